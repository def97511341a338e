"""What every training notebook shares: the equal budget (:class:`Budget`), the study (data, budget and one
evaluation protocol, :class:`Study`), training a layered model through the run cache (:func:`train_layered`),
and recording evaluations and the paper's comparative claims (:func:`record_scores`, :func:`compare`,
:func:`scores_table`).

Every experiment trains through the run cache, so two notebooks that ask for the same model (the sinc-noise
model of notebook 01 is Table 1's layered model) get the same cached run, and every comparison is scored by
one :class:`ldlib.evaluation.Evaluator` and decided by the 95% interval of the paired difference between the
compared models (across training seeds where there are several): agrees, disagrees, no effect of the paper's
size, or unresolved (``ldlib.reproduction.recorder.judge_difference``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Union

from ..config import DiffusionConfig, TrainConfig, model_config
from ..data.datasets import data_spec
from ..evaluation import Evaluation, Evaluator, metric_value, paired_difference
from ..training import TrainResult
from .recorder import DEFAULT_DELTA, EMPIRICAL, Recorder, fmt, fmt_ci, judge_difference
from .run_cache import trained_model


#: One arm of a comparison: a model's evaluation, or one evaluation per training seed (paired by seed index).
Arm = Union[Evaluation, Sequence[Evaluation]]


#: learning-rate warm-up, in steps, whatever the budget (3,200 images at batch 32; benchmarks/recipe_sweep.py)
WARMUP_STEPS = 100
#: steps between checkpoints: what an interruption can lose (about 3 minutes of the slowest cpu16 model)
CHECKPOINT_EVERY = 250


def budget_config(budget_images: int, batch_size: int, lr: float, seed: int = 0, text_encoder: str = "minilm",
                  **overrides) -> TrainConfig:
    """The training config of a run that sees ``budget_images`` images: every notebook builds its configs here,
    so the same request from two notebooks hashes to the same run. Nothing but ``steps`` depends on the budget
    (linear warm-up over the first :data:`WARMUP_STEPS` steps, then a constant learning rate; a checkpoint every
    :data:`CHECKPOINT_EVERY` steps), so a smaller budget is a point on a larger one's trajectory: one run per
    seed gives the whole budget curve (``ldlib.reproduction.run_cache``)."""
    steps = max(1, budget_images // batch_size)
    schedule = {"checkpoint_every": CHECKPOINT_EVERY, "warmup_steps": WARMUP_STEPS, **overrides}
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, text_encoder=text_encoder, **schedule)


@dataclass(frozen=True)
class Budget:
    """What every compared model gets: images seen, batch size (images per step), AdamW learning rate."""

    images: int
    batch_size: int
    lr: float
    seed: int = 0
    text_encoder: str = "minilm"

    def config(self, **overrides):
        return budget_config(self.images, self.batch_size, self.lr, self.seed, self.text_encoder, **overrides)


@dataclass
class Study:
    """What a training notebook's parameters (``ldlib.reproduction.parameters.TRAINING``) define: the data, the equal
    budget, and the one evaluation protocol its models are compared with."""

    preset: str
    spec: dict
    budget: Budget
    evaluator: Evaluator

    @classmethod
    def from_params(cls, p: Mapping, progress: bool = True) -> "Study":
        spec = data_spec(p["dataset"], seed=p["seed"], data_size=p["data_size"], root=p["data_root"])
        evaluator = Evaluator(spec, p["n_samples"], p["sample_steps"], p["guidance"], seed=p["seed"],
                              text_encoder=p["text_encoder"], n_reference=p["n_reference"],
                              judge_steps=p["judge_steps"], n_boot=p["n_boot"], progress=progress,
                              method=p["sampler"])
        return cls(p["preset"], spec, Budget(p["budget_images"], p["batch_size"], p["lr"], p["seed"],
                                             p["text_encoder"]), evaluator)

    def train(self, levels: int, **kwargs) -> TrainResult:
        return train_layered(self.preset, levels, self.spec, kwargs.pop("budget", self.budget), **kwargs)

    def prompts(self, resolution: int) -> list[str]:
        """The prompts every evaluation uses, in order (the reference captions)."""
        return self.evaluator.reference(resolution).captions


def train_layered(preset: str, levels: int, data: dict, budget: Budget, *, noise: str = "sinc",
                  shifts: Sequence[float] | None = None, crop_size: int | None = None,
                  init_from: TrainResult | None = None, label: str = "", progress: bool = True) -> TrainResult:
    """The layered model of ``preset`` over its first ``levels`` resolutions, trained on eq. (3) with the given
    noise kind, per-resolution shifts (nats; default the paper's), optional strategic cropping, optionally
    stacked on a smaller finished run. Defaults equal Table 1's layered rows, so those runs are shared."""
    mcfg = model_config(preset, levels)
    dcfg = (DiffusionConfig.paper(mcfg.resolutions, noise_kind=noise) if shifts is None
            else DiffusionConfig(mcfg.resolutions, tuple(float(s) for s in shifts), noise_kind=noise))
    tcfg = budget.config(crop_size=crop_size) if crop_size else budget.config()
    name = f"{preset}-layered{mcfg.resolutions[-1]}" + (f"-{label}" if label else "")
    return trained_model(name, mcfg, dcfg, tcfg, data, progress=progress, init_from=init_from)


# ------------------------------------------------------------------------------------------ reporting


def record_scores(rec: Recorder, name: str, ev: Evaluation, note: str = "", paper_fid: float | None = None,
                  source: str = "", alignment_note: str = "") -> None:
    """FID, KID, IS-style and alignment of one model, each with its 95% interval; ``paper_fid`` (printed in
    ``source``) is the paper's FID for the same model, where comparable."""
    s = ev.scores
    rec.metric(f"FID {name}", s.fid, ci=s.fid_ci, paper=paper_fid, source=source, note=note)
    rec.metric(f"KID {name}", s.kid, ci=s.kid_ci)
    rec.metric(f"IS (EfficientNet-Lite0) {name}", s.inception_score, ci=s.is_ci,
               note="not comparable to published Inception Scores")
    if ev.alignment is not None:
        rec.metric(f"alignment {name}", ev.alignment, ci=ev.alignment_ci, note=alignment_note)


def compare(rec: Recorder, key: str, paper_says: str, a: tuple[str, Arm], b: tuple[str, Arm], metric: str,
            paper_expects_a_better: bool, delta: float = DEFAULT_DELTA) -> str:
    """Record the paper's claim "a beats b on ``metric``" judged by the 95% interval of the paired difference
    a - b (same prompts and sampling noise; one evaluation per training seed, paired by seed index): agrees,
    disagrees, no effect within +-``delta`` (relative to b; the paper's own effect size where it prints one),
    or unresolved with the seeds that would decide it (``recorder.judge_difference``)."""
    (na, ea), (nb, eb) = a, b
    arm_a, arm_b = _seeds(ea), _seeds(eb)
    diff, ci, seeds = paired_difference(arm_a, arm_b, metric)
    lower_better = metric_value(arm_b[0], metric)[2]
    paper_sign = (-1 if lower_better else 1) * (1 if paper_expects_a_better else -1)
    scale = sum(metric_value(e, metric)[0] for e in arm_b) / len(arm_b)
    judged = judge_difference(diff, ci, paper_sign, scale, delta, seeds)
    va = sum(metric_value(e, metric)[0] for e in arm_a) / len(arm_a)
    finding = (f"{na} {fmt(va)} vs {nb} {fmt(scale)}; {na} - {nb} = {fmt(diff)} {fmt_ci(ci)} "
               f"({seeds} seed{'s' if seeds > 1 else ''}; paired; margin ±{delta:.0%} of {nb})")
    rec.claim(key, paper_says, finding, verdict=judged.verdict, kind=EMPIRICAL,
              seeds_to_resolve=judged.seeds_to_resolve)
    return f"{metric.upper()}: {na} - {nb} = {fmt(diff)} {fmt_ci(ci)}, {judged.verdict}"


def _seeds(arm: "Arm") -> list[Evaluation]:
    return [arm] if isinstance(arm, Evaluation) else list(arm)


def scores_table(evaluations: dict[str, Evaluation]) -> str:
    """One Markdown row per model: FID, KID ×10³, IS-style and alignment, each with its interval."""
    lines = ["| model | FID | 95% CI | KID ×10³ | 95% CI | IS (EffNet) | 95% CI | alignment | 95% CI |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, ev in evaluations.items():
        s = ev.scores
        lines.append(f"| {name} | {fmt(s.fid)} | {fmt_ci(s.fid_ci)} | {fmt(s.kid * 1e3)} | {fmt_ci(s.kid_ci, 1e3)} "
                     f"| {fmt(s.inception_score)} | {fmt_ci(s.is_ci)} | {fmt(ev.alignment)} | {fmt_ci(ev.alignment_ci)} |")
    return "\n".join(lines)

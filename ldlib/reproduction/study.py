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

from dataclasses import dataclass, replace
from typing import Mapping, Sequence, Union

from ..config import DiffusionConfig, TrainConfig, UNetConfig, model_config
from ..data.datasets import data_spec
from ..evaluation import Evaluation, Evaluator, across_seed_value, metric_value, paired_difference
from ..training import TrainResult
from .recorder import DEFAULT_DELTA, EMPIRICAL, MIN_SEEDS_TO_DECIDE, Recorder, fmt, fmt_ci, judge_difference
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
    """What a training notebook's parameters (``ldlib.reproduction.parameters.TRAINING``, and ``SEEDS``
    where it has them) define: the data, the equal budget, the training seeds, and the one evaluation protocol
    its models are compared with."""

    preset: str
    spec: dict
    budget: Budget
    evaluator: Evaluator
    seeds: int = 1
    #: the protocol at a budget curve's smaller budgets (fewer samples), when the notebook has a curve
    curve_evaluator: Evaluator | None = None

    @classmethod
    def from_params(cls, p: Mapping, progress: bool = True) -> "Study":
        spec = data_spec(p["dataset"], seed=p["seed"], data_size=p["data_size"], root=p["data_root"])
        evaluator = Evaluator(spec, p["n_samples"], p["sample_steps"], p["guidance"], seed=p["seed"],
                              text_encoder=p["text_encoder"], n_reference=p["n_reference"],
                              judge_steps=p["judge_steps"], n_boot=p["n_boot"], progress=progress,
                              method=p["sampler"], prefixes=[p["n_samples_curve"]] if "n_samples_curve" in p else [])
        curve = (Evaluator(spec, p["n_samples_curve"], p["sample_steps"], p["guidance"], seed=p["seed"],
                           text_encoder=p["text_encoder"], n_reference=p["n_reference"], judge_steps=0,
                           n_boot=p["n_boot"], progress=progress, method=p["sampler"])
                 if "n_samples_curve" in p else None)
        return cls(p["preset"], spec, Budget(p["budget_images"], p["batch_size"], p["lr"], p["seed"],
                                             p["text_encoder"]), evaluator, p.get("seeds", 1), curve)

    def train(self, levels: int, seed_index: int = 0, **kwargs) -> TrainResult:
        """The layered model over ``levels`` resolutions (:func:`train_layered`'s options) with training seed
        ``budget.seed + seed_index``."""
        budget = kwargs.pop("budget", self.budget)
        return train_layered(self.preset, levels, self.spec, replace(budget, seed=budget.seed + seed_index), **kwargs)

    def replicate(self, levels: int, init_from: Sequence[TrainResult] | None = None, **kwargs) -> list[TrainResult]:
        """The same model once per training seed (``seeds`` of them), in seed order: one arm of a comparison.
        ``init_from``: one source run per seed to stack on (seed k's model starts from seed k's source)."""
        sources = list(init_from) if init_from is not None else [None] * self.seeds
        if len(sources) != self.seeds:
            raise ValueError(f"init_from needs one run per training seed ({self.seeds}), got {len(sources)}")
        return [self.train(levels, seed_index=k, init_from=src, **kwargs) for k, src in enumerate(sources)]

    def evaluate(self, runs: Sequence[TrainResult]) -> list[Evaluation]:
        """One evaluation per seed's run, with the study's protocol (paired by seed index across arms)."""
        return [self.score(self.evaluator, run) for run in runs]

    def curve(self, levels: int, budgets: Sequence[int], **kwargs) -> dict[int, list[TrainResult]]:
        """The model at every budget (images seen, increasing), once per seed: each seed's one run passes
        through them all (its checkpoints at the smaller budgets are kept milestones)."""
        return {b: self.replicate(levels, budget=replace(self.budget, images=b), **kwargs) for b in sorted(budgets)}

    def evaluate_curve(self, curve: Mapping[int, Sequence[TrainResult]]) -> dict[int, list[Evaluation]]:
        """A curve's evaluations: the largest budget with the study's protocol, the others with the curve's
        (fewer samples; the same prompts and noise)."""
        last, small = max(curve), self.curve_evaluator or self.evaluator
        return {b: [self.score(self.evaluator if b == last else small, run) for run in runs] for b, runs in curve.items()}

    def score(self, protocol: Evaluator, run: TrainResult) -> Evaluation:
        """``protocol``'s evaluation of ``run``: every evaluation a study makes goes through here (the plan's
        ``PlanningStudy`` notes it instead)."""
        return protocol(run)

    def at_curve_count(self, curve: Mapping[int, Sequence[Evaluation]]) -> dict[int, list[Evaluation]]:
        """:meth:`evaluate_curve`'s evaluations at the curve protocol's one sample count (:func:`at_one_count`)."""
        if self.curve_evaluator is None:
            raise ValueError("this study has no curve protocol (its notebook has no n_samples_curve)")
        return at_one_count(curve, self.curve_evaluator)

    def record_floors(self, rec: Recorder, resolutions: Sequence[int]) -> dict[tuple[int, int], tuple[float, float]]:
        """:func:`record_floors` at the sample counts this study scores (its protocol's, and its curve's)."""
        return record_floors(rec, [e for e in (self.evaluator, self.curve_evaluator) if e is not None], resolutions)

    def prompts(self, resolution: int) -> list[str]:
        """The prompts every evaluation uses, in order (the reference captions)."""
        return self.evaluator.reference(resolution).captions


def at_sample_count(ev: Evaluation, protocol: Evaluator) -> Evaluation:
    """``ev`` as ``protocol`` would have scored the same checkpoint with its fewer samples: ``ev``'s first
    ``protocol.n_samples`` images are the very images ``protocol`` draws (the prompts are the reference's
    captions in order and batch j is seeded ``seed + j``: ``ldlib.evaluation.evaluator.evaluate_model``), so
    rescoring them with the same bootstrap (``Evaluation.first``: from their stored features, or from ``ev``'s
    record) gives its numbers without sampling again. No text alignment (it is not stored per sample)."""
    p, n = ev.scores.protocol, protocol.n_samples
    same = (p.sampler, p.sampler_steps, p.guidance, p.seeds) == (
        protocol.method, protocol.steps, protocol.guidance, f"batch j uses seed {protocol.seed} + j")
    if not same or n > p.n_generated:
        raise ValueError(f"{protocol.n_samples} samples of this protocol are not the first ones of an evaluation with "
                         f"{p.n_generated} samples, sampler {p.sampler} ({p.sampler_steps} steps, guidance "
                         f"{p.guidance}), seeds '{p.seeds}'")
    return ev.first(n, protocol.n_boot, protocol.seed)


def at_one_count(curve: Mapping[int, Sequence[Evaluation]], protocol: Evaluator) -> dict[int, list[Evaluation]]:
    """A budget curve's evaluations with ``protocol``'s sample count at every budget: those scored on more
    samples (the largest budget's, which decide the claims) are rescored on their first ones
    (:func:`at_sample_count`). FID is biased upward by few samples (Chong & Forsyth 2020), so a curve that
    switches to more samples at its last budget drops there for no reason but the count: its levels are drawn
    at one count; paired differences, at one count within each budget, need not be."""
    return {b: [at_sample_count(e, protocol) if e.scores.protocol.n_generated > protocol.n_samples else e for e in evs]
            for b, evs in sorted(curve.items())}


def record_floors(rec: Recorder, protocols: Sequence[Evaluator],
                  resolutions: Sequence[int]) -> dict[tuple[int, int], tuple[float, float]]:
    """The metrics' floor at each protocol's sample count and each of ``resolutions``: as many *other* real
    images of the reference's split as the protocol generates, scored against its reference
    (``Evaluator.floor_at``): what a model drawing real images of the same distribution would score there.
    Recorded once per (sample count, resolution) as FID and KID metrics, returned as {(count, resolution): (FID,
    KID)} for figures and text."""
    floors = {}
    for protocol in protocols:
        for res in resolutions:
            if (protocol.n_samples, res) not in floors:
                fid, kid, n = protocol.floor_at(res)
                other = {"train": "training", "val": "held-out"}[protocol.split]
                rec.metric(f"FID floor: {n} other {other} images @ {res}px", fid, note="real images vs the reference")
                rec.metric(f"KID floor: {n} other {other} images @ {res}px", kid)
                floors[protocol.n_samples, res] = (fid, kid)
    return floors


def floors_text(floors: Mapping[tuple[int, int], tuple[float, float]]) -> str:
    """:func:`record_floors`' result in words, for a notebook's protocol paragraph."""
    return "; ".join(f"{res}px at {n} samples: FID {fid:.1f}, KID {kid * 1e3:.2f}e-3"
                     for (n, res), (fid, kid) in floors.items())


def layered_request(preset: str, levels: int, budget: Budget, *, noise: str = "sinc",
                    shifts: Sequence[float] | None = None, crop_size: int | None = None,
                    label: str = "") -> tuple[str, UNetConfig, DiffusionConfig, TrainConfig]:
    """What :func:`train_layered` asks the run cache for (its name, model, schedules and training config), for
    ``ldlib.reproduction.plan`` to find the run without training it."""
    mcfg = model_config(preset, levels)
    dcfg = (DiffusionConfig.paper(mcfg.resolutions, noise_kind=noise) if shifts is None
            else DiffusionConfig(mcfg.resolutions, tuple(float(s) for s in shifts), noise_kind=noise))
    tcfg = budget.config(crop_size=crop_size) if crop_size else budget.config()
    return f"{preset}-layered{mcfg.resolutions[-1]}" + (f"-{label}" if label else ""), mcfg, dcfg, tcfg


def train_layered(preset: str, levels: int, data: dict, budget: Budget, *, noise: str = "sinc",
                  shifts: Sequence[float] | None = None, crop_size: int | None = None,
                  init_from: TrainResult | None = None, label: str = "", progress: bool = True) -> TrainResult:
    """The layered model of ``preset`` over its first ``levels`` resolutions, trained on eq. (3) with the given
    noise kind, per-resolution shifts (nats; default the paper's), optional strategic cropping, optionally
    stacked on a smaller finished run. Defaults equal Table 1's layered rows, so those runs are shared."""
    request = layered_request(preset, levels, budget, noise=noise, shifts=shifts, crop_size=crop_size, label=label)
    return trained_model(*request, data, progress=progress, init_from=init_from)


# ------------------------------------------------------------------------------------------ reporting


def seeds_range(evaluations: Sequence[Evaluation], metric: str, scale: float = 1.0) -> str:
    """"seeds 82.3-86.9": the lowest and highest training seed's ``metric`` ('' for one seed)."""
    values = [metric_value(e, metric)[0] * scale for e in evaluations]
    return f"seeds {min(values):.4g}-{max(values):.4g}" if len(values) > 1 else ""


def record_scores(rec: Recorder, name: str, arm: Arm, note: str = "", paper_fid: float | None = None,
                  source: str = "", alignment_note: str = "") -> None:
    """FID, KID, IS-style and alignment of one model (one evaluation, or one per training seed: their mean,
    its interval across seeds and the seeds' range), each with its 95% interval; ``paper_fid`` (printed in
    ``source``) is the paper's FID for the same model, where comparable."""
    evs = _seeds(arm)
    seeds = f"mean of {len(evs)} training seeds" if len(evs) > 1 else ""
    rows = [("fid", "FID", [note, seeds], dict(paper=paper_fid, source=source)), ("kid", "KID", [], {}),
            ("is", "IS (EfficientNet-Lite0)", ["not comparable to published Inception Scores"], {})]
    if all(e.alignment is not None for e in evs):
        rows.append(("alignment", "alignment", [alignment_note], {}))
    for metric, label, notes, extra in rows:
        mean, ci = across_seed_value(evs, metric)
        rec.metric(f"{label} {name}", mean, ci=ci, note="; ".join(filter(None, [*notes, seeds_range(evs, metric)])),
                   **extra)


def compare(rec: Recorder, key: str, paper_says: str, a: tuple[str, Arm], b: tuple[str, Arm], metric: str,
            paper_expects_a_better: bool, delta: float = DEFAULT_DELTA) -> str:
    """Record the paper's claim "a beats b on ``metric``" judged by the 95% interval of the paired difference
    a - b (same prompts and sampling noise; one evaluation per training seed, paired by seed index): agrees,
    disagrees, no effect within +-``delta`` (relative to b; the paper's own effect size where it prints one),
    or unresolved with the seeds that would decide it (``recorder.judge_difference``; always with one seed)."""
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
    if seeds < MIN_SEEDS_TO_DECIDE:
        finding += (f"; the interval is the sample bootstrap's alone, training-seed spread unmeasured: no verdict "
                    f"from fewer than {MIN_SEEDS_TO_DECIDE} seeds")
    rec.claim(key, paper_says, finding, verdict=judged.verdict, kind=EMPIRICAL,
              seeds_to_resolve=judged.seeds_to_resolve, effect=judged.effect)
    return f"{metric.upper()}: {na} - {nb} = {fmt(diff)} {fmt_ci(ci)}, {judged.verdict}"


def pairing(seeds: int) -> str:
    """How a paired difference's interval was made, for its note: across training seeds paired by seed index, or,
    with one seed, from that seed's sample bootstrap alone (the spread between seeds unmeasured)."""
    return (f"paired across {seeds} seeds" if seeds > 1
            else "1 seed, paired: its interval is the sample bootstrap's alone")


def _seeds(arm: "Arm") -> list[Evaluation]:
    return [arm] if isinstance(arm, Evaluation) else list(arm)


def scores_table(evaluations: Mapping[str, Arm]) -> str:
    """One Markdown row per model: FID, KID ×10³, IS-style and alignment, each with its interval (with several
    training seeds: their mean, the interval across seeds, and the seeds' count)."""
    lines = ["| model | seeds | FID | 95% CI | KID ×10³ | 95% CI | IS (EffNet) | 95% CI | alignment | 95% CI |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, arm in evaluations.items():
        evs = _seeds(arm)
        cells = []
        for metric, scale in (("fid", 1.0), ("kid", 1e3), ("is", 1.0), ("alignment", 1.0)):
            if metric == "alignment" and any(e.alignment is None for e in evs):
                cells.append("— | —")
                continue
            mean, ci = across_seed_value(evs, metric)
            cells.append(f"{fmt(mean * scale)} | {fmt_ci(ci, scale)}")
        lines.append(f"| {name} | {len(evs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

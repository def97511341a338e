"""What a profile's campaign still needs, read from the run cache and the records (``ldlib.runtime.records``)
without training or sampling anything: Table 1's runs (``ldlib pretrain --plan``, :func:`plan_runs`) or every
notebook's (``ldlib reproduce --plan``, :func:`notebooks_plan`: each training notebook's library call made on a
:class:`PlanningStudy`, which notes runs and evaluations in a :class:`Ledger` instead of making them). Per run,
the images it has seen and must see (none when the records answer every evaluation and probe asked of it: a
noise-free-part probe not recorded needs the weights, ``ldlib.evaluation.reliance``), its measured training speed
and the evaluations stored and needed, then the time left at the speeds measured on this machine, and the time
done at the same speeds.

A ``default`` campaign runs for days on a 2-core CPU and resumes across interruptions; the runner's suite ETA
needs an earlier run of every notebook, so a first campaign would otherwise go without one.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from ..config import UNetConfig, get_preset
from ..data.datasets import data_spec
from ..evaluation import Evaluation, Evaluator, reliance
from ..flops import count_flops
from ..runtime.progress import duration
from ..schedules import PAPER_SHIFTS
from ..training import TrainResult
from ..training.checkpoint import latest_checkpoint, read_history
from ..training.train import SHARED_CPU
from . import model_stacking, noise_scaling, schedule_shifting, strategic_cropping
from .run_cache import recorded_run, run_dir_for
from .study import Budget, Study, layered_request
from .table1 import Protocols, evaluators, probed_rows, row_request, rows


@dataclass(frozen=True)
class PlannedRun:
    """One training run of Table 1 (a row, a rule and a training seed) as the run cache holds it now."""

    rule: str
    row: str
    resolution: int  # px, the model's top resolution
    seed_index: int
    run_dir: Path
    flops: int  # forward FLOPs per image (``table1.Row.flops``): prices a row never measured
    reached_images: int
    target_images: int
    #: images/s and CPU share of this run's last training segment (:func:`measured_speed`), None before it trains
    measured: tuple[float, float | None] | None
    evaluations_stored: int
    evaluations_needed: int
    samples_left: int  # images the evaluations not stored yet will generate
    samples_done: int = 0  # images the stored evaluations generated
    label: str = ""  # what sets the run apart from its row's other runs (a notebook's arm), shown beside the row

    @property
    def images_left(self) -> int:
        return max(0, self.target_images - self.reached_images)


def measured_speed(run_dir: Path) -> tuple[float, float | None] | None:
    """Images per second of the run's last training segment and its CPU share (``TrainResult.cpu_share``; None
    on a GPU), or None when the run has not trained yet."""
    latest = latest_checkpoint(run_dir)
    history = read_history(latest) if latest is not None else {}
    speed = history.get("images_per_s")
    if speed is None or speed != speed:
        return None
    return float(speed), history.get("cpu_share")


def alone_speed(measured: tuple[float, float | None]) -> float:
    """The speed the run would have had with the CPU to itself: a segment that got a share s < ``SHARED_CPU``
    of its threads' time (paused, or beside other work) is scaled by 1 / s. An estimate: other work also slows
    the time it does get (caches, memory bandwidth), so it stays on the fast side."""
    speed, share = measured
    return speed / share if share is not None and 0 < share < SHARED_CPU else speed


def reached_step(run_dir: Path) -> int:
    """The step of the run's newest complete checkpoint (0 when it has none)."""
    latest = latest_checkpoint(run_dir)
    return int(latest.name.split("-")[-1]) if latest is not None else 0


@dataclass
class _Asked:
    """One run as a campaign asks for it (:class:`Ledger`): the most images any request trains it to, and every
    evaluation asked of it, by its folder name: (images it generates, stored), and whether a probe asked of it
    (``ldlib.evaluation.reliance``) is not stored yet, which needs its weights."""

    group: str
    row: str
    label: str
    model: UNetConfig
    seed_index: int
    run_dir: Path
    target: int
    batch_size: int
    evaluations: dict[str, tuple[int, bool]] = field(default_factory=dict)
    also: list[str] = field(default_factory=list)  # the other groups asking for it
    probe_missing: bool = False

    def describe(self) -> str:
        """Its label, and the other groups that ask for it ("bilinear noise", "also 03, 05 paper")."""
        return ", ".join(filter(None, [self.label, "also " + ", ".join(self.also) if self.also else ""]))


def _run_key(run_dir: Path) -> str:
    """The hash of the run's cache key, which its folder name ends with: a run not trained yet has a folder name
    per asker (``run_cache.run_dir_for``), the same hash for all."""
    return run_dir.name.rsplit("-", 1)[-1]


class Ledger:
    """Every run and evaluation that notebooks ask for, each once: the run cache shares a run between notebooks
    (the same key), and an evaluation between protocols with the same key, so a run asked for twice is listed
    under the first asker, trained to the larger request, with the evaluations of both."""

    def __init__(self) -> None:
        self._runs: dict[str, _Asked] = {}  # by the run key's hash

    def run(self, group: str, row: str, model: UNetConfig, seed_index: int, run_dir: Path, images: int,
            batch_size: int, label: str = "") -> TrainResult:
        """Note a request to train ``run_dir`` to ``images``; returns the run as training it would (its checkpoint
        is where it will be, in the folder of the first request: what a stacked run's key is made of)."""
        asked = self._runs.setdefault(_run_key(run_dir),
                                      _Asked(group, row, label, model, seed_index, run_dir, 0, batch_size))
        asked.target = max(asked.target, images)
        if group != asked.group and group not in asked.also:
            asked.also.append(group)
        step = images // batch_size  # in the first asker's folder: the one training creates (what a stacked key names)
        return TrainResult(asked.run_dir, step, checkpoint=asked.run_dir / f"step-{step:08d}")

    def evaluation(self, protocol: Evaluator, run: TrainResult) -> bool:
        """Note that ``protocol`` scores ``run`` (noted with :meth:`run`); whether it is stored already."""
        stored = protocol.is_stored(run)
        self._runs[_run_key(run.run_dir)].evaluations[protocol.folder(run).name] = (protocol.n_samples, stored)
        return stored

    def probe(self, run: TrainResult, about: dict) -> bool:
        """Note that the noise-free-part probe with inputs ``about`` reads ``run`` (noted with :meth:`run`);
        whether it is stored already (else the run's weights are needed: trained again if only recorded)."""
        stored = reliance.is_probed(run, about, seed=about["seed"])
        self._runs[_run_key(run.run_dir)].probe_missing |= not stored
        return stored

    def planned(self) -> list[PlannedRun]:
        """The runs in the order first asked, with their state in the run cache and the records."""
        out = []
        for a in self._runs.values():
            stored = [n for n, done in a.evaluations.values() if done]
            reached = reached_step(a.run_dir) * a.batch_size
            if (len(stored) == len(a.evaluations) and not a.probe_missing
                    and recorded_run(a.run_dir, a.target // a.batch_size) is not None):
                reached = max(reached, a.target)  # the records answer all that is asked of it: nothing to train
            out.append(PlannedRun(a.group, a.row, a.model.resolutions[-1], a.seed_index, a.run_dir,
                                  count_flops(a.model), reached, a.target, measured_speed(a.run_dir), len(stored),
                                  len(a.evaluations), sum(n for n, done in a.evaluations.values() if not done),
                                  sum(stored), a.describe()))
        return out


def plan_runs(preset: str, data: dict, budget: Budget, budgets: Sequence[int], seeds: int, rules: Sequence[str],
              protocols: Protocols | None = None, only: Sequence[str] = (),
              heldout_rule: str | None = None) -> list[PlannedRun]:
    """Every run ``ldlib pretrain`` would train for these arguments, in its order, with its state in the cache.
    With ``protocols`` (``table1.evaluators``), the evaluations ``--evaluate`` needs per run: one per budget (the
    largest with ``final``, the others with ``curve``) and the held-out one under ``heldout_rule`` (the profile's
    first rule; default ``rules[0]``)."""
    ledger = Ledger()
    ask_table1(ledger, preset, data, budget, budgets, seeds, rules, protocols, only, heldout_rule)
    return ledger.planned()


def ask_table1(ledger: Ledger, preset: str, data: dict, budget: Budget, budgets: Sequence[int], seeds: int,
               rules: Sequence[str], protocols: Protocols | None = None, only: Sequence[str] = (),
               heldout_rule: str | None = None, group: str = "", probe_seed: int | None = None) -> None:
    """Note in ``ledger`` what :func:`plan_runs` lists (each run under ``group`` + its rule), and with
    ``probe_seed`` the noise-free-part probe notebook 05 makes of its paired layered rows' runs at the largest budget
    (``table1.noise_reliance``, with that seed)."""
    last = max(budgets)
    table = [r for r in rows(preset) if not only or r.name in only]
    probed = probed_rows(table)
    for rule in rules:
        asked = [] if protocols is None else [(protocols.final if b == last else protocols.curve, b) for b in budgets]
        asked += [(protocols.heldout, last)] if protocols is not None and rule == (heldout_rule or rules[0]) else []
        for k in range(seeds):
            for row in table:
                run_dir = run_dir_for(*row_request(preset, row, budget, rule, k), data)
                name = f"{group} {rule}".strip()
                ledger.run(name, row.name, row.model, k, run_dir, last, budget.batch_size)
                for protocol, images in asked:
                    ledger.evaluation(protocol, ledger.run(name, row.name, row.model, k, run_dir, images,
                                                           budget.batch_size))
                if probe_seed is not None and row.name in probed:
                    ledger.probe(ledger.run(name, row.name, row.model, k, run_dir, last, budget.batch_size),
                                 reliance.probe_about(data, row.model.resolutions[-1], budget.text_encoder,
                                                      seed=probe_seed))


@dataclass
class PlanningStudy(Study):
    """A :class:`~ldlib.reproduction.study.Study` that trains and samples nothing: every run a notebook's library
    calls ask it to train, and every evaluation, is noted in ``ledger`` under ``group`` instead; an evaluation
    already stored is read back (a notebook choosing its next runs by a score, like notebook 02's sweeps, then
    chooses as it will), one not stored yet is None."""

    ledger: Ledger | None = None
    group: str = ""

    def train(self, levels: int, seed_index: int = 0, **kwargs) -> TrainResult:
        budget = kwargs.pop("budget", self.budget)
        init_from, _ = kwargs.pop("init_from", None), kwargs.pop("progress", None)
        name, mcfg, dcfg, tcfg = layered_request(self.preset, levels, replace(budget, seed=budget.seed + seed_index),
                                                 **kwargs)
        run_dir = run_dir_for(name, mcfg, dcfg, tcfg, self.spec, init_from.checkpoint if init_from else None)
        crop = kwargs.get("crop_size")
        row = f"{'single' if levels == 1 else 'layered'}{mcfg.resolutions[-1]}" + (f" crop{crop}" if crop else "")
        label = kwargs.get("label") or (f"{kwargs['noise']} noise" if kwargs.get("noise", "sinc") != "sinc" else "")
        return self.ledger.run(self.group, row, mcfg, seed_index, run_dir, budget.images, budget.batch_size, label)

    def score(self, protocol: Evaluator, run: TrainResult) -> Evaluation | None:
        if not self.ledger.evaluation(protocol, run):
            return None
        folder = protocol.folder(run)
        return Evaluation.load(folder) or protocol.recorded(folder)


def _plan_noise(study: PlanningStudy, p: dict) -> list[str]:
    noise_scaling.trained_arms(study, p["levels"], p["train_kinds"])
    return []


def _plan_shifts(study: PlanningStudy, p: dict) -> list[str]:
    notes = []

    def pick(sweep2):  # the notebook's choice once the 2-resolution sweep is scored; until then, an assumption
        if all(e is not None for _, _, evs in sweep2 for e in evs):
            return schedule_shifting.best_shift(sweep2)
        notes.append("02: the 3-resolution sweep's middle shift is the 2-resolution sweep's best, not scored yet: "
                     "planned as the paper's (another winner asks for other runs)")
        return PAPER_SHIFTS[2]

    sweep2, _ = schedule_shifting.sweeps(study, p["sweep2_extra"], p["sweep3_extra"], pick=pick)
    about = reliance.probe_about(study.spec, get_preset(p["preset"]).resolutions[1], p["text_encoder"], seed=p["seed"])
    for _, runs, _ in sweep2:  # the notebook probes the 2-resolution sweep's runs
        for run in runs:
            study.ledger.probe(run, about)
    return notes


def _plan_cropping(study: PlanningStudy, p: dict) -> list[str]:
    crop = p["crop_size"] or strategic_cropping.default_crop_size(p["preset"])
    speeds = [strategic_cropping.stored_training_speed(p["preset"], p["levels"], p["batch_size"], c, p["speed_steps"],
                                                       seed=p["seed"]) for c in (None, crop)]
    ratio = speeds[1] / speeds[0] if None not in speeds else 1.0
    strategic_cropping.equal_time_curves(study, p["levels"], [*p["curve_images"], p["budget_images"]], crop, ratio)
    return [] if None not in speeds else [
        "03: the cropping speed-up is not measured on this machine yet (the notebook measures it first): the cropped "
        "runs are planned at the full runs' budgets, fewer images than they will see in the same wall time"]


def _plan_stacking(study: PlanningStudy, p: dict) -> list[str]:
    model_stacking.trained_arms(study, get_preset(p["preset"]).resolutions)
    return []


#: each training notebook's runs and evaluations, asked of a :class:`PlanningStudy` through the library calls
#: the notebook makes; notes on what the plan had to assume
NOTEBOOK_PLANS = {"01_noise_scaling": _plan_noise, "02_schedule_shifting": _plan_shifts,
                  "03_strategic_cropping": _plan_cropping, "04_model_stacking": _plan_stacking}


def notebooks_plan(jobs: Sequence[tuple[object, dict]]) -> tuple[list[PlannedRun], list[str]]:
    """What ``ldlib reproduce`` would train and score for ``jobs`` (``runner.plan``: (notebook, parameters)), each
    run once, with the notes on what had to be assumed. Table 1 (notebook 05) is asked first: the ablations share
    its rows' runs, so a shared run is listed under 05 (else under the first notebook asking), and notebook 05's
    time left is Table 1's whole (what ``scripts/default_campaign.sh`` trains first)."""
    ledger, notes = Ledger(), []
    for spec, p in sorted(jobs, key=lambda job: job[0].name != "05_table1"):
        group = spec.name.split("_")[0]
        if spec.name == "05_table1":
            data = data_spec(p["dataset"], seed=p["seed"], data_size=p["data_size"], root=p["data_root"])
            budget = Budget(p["budget_images"], p["batch_size"], p["lr"], p["seed"], p["text_encoder"])
            ask_table1(ledger, p["preset"], data, budget, [*p["curve_images"], p["budget_images"]], p["seeds"],
                       p["rules"], evaluators(data, p), p["rows"], p["rules"][0], group=group, probe_seed=p["seed"])
        elif spec.name in NOTEBOOK_PLANS:
            study = PlanningStudy.from_params(p, progress=False)
            study.ledger, study.group = ledger, group
            notes += NOTEBOOK_PLANS[spec.name](study, p)
    return ledger.planned(), notes


def row_speeds(planned: Sequence[PlannedRun]) -> tuple[dict[str, float], set[str]]:
    """Each row's training images/s alone and the rows whose speed is estimated. A measured row: the median speed
    alone (:func:`alone_speed`) over its measured runs (the schedule rule and the seed do not change the work).
    A row never measured: the measured rows' median images/s x FLOPs per image, divided by its own FLOPs (the
    work per image scales with them: on this CPU layered64 / layered32 trained 1.83x slower for 1.74x the
    FLOPs). Nothing measured: no speeds."""
    by_row: dict[str, list[float]] = {}
    flops = {p.row: p.flops for p in planned}
    for p in planned:
        if p.measured is not None:
            by_row.setdefault(p.row, []).append(alone_speed(p.measured))
    return _fill_by_flops({row: statistics.median(v) for row, v in by_row.items()}, flops, power=-1)


def _fill_by_flops(measured: dict[str, float], flops: dict[str, int], power: int) -> tuple[dict[str, float], set[str]]:
    """``measured`` per row, and every other row of ``flops`` estimated as value ∝ FLOPs**``power`` (the
    measured rows' median constant), with the names of those estimated; nothing measured: nothing."""
    if not measured:
        return {}, set()
    k = statistics.median(v / flops[row] ** power for row, v in measured.items())
    estimated = {row for row in flops if row not in measured}
    return {**measured, **{row: k * flops[row] ** power for row in estimated}}, estimated


def evaluation_seconds_per_image(planned: Sequence[PlannedRun]) -> tuple[dict[str, float], set[str]]:
    """Per row, the median wall seconds per generated image (sampling, features and scores) of the evaluations
    stored in its runs' folders, and the rows whose seconds are estimated: a row with none is priced like
    :func:`row_speeds` prices training, from the others' seconds per image and FLOPs (sampling dominates; the
    Inception features, a fixed cost per image, are ~7% of it at 32 px)."""
    by_row: dict[str, list[float]] = {}
    flops = {p.row: p.flops for p in planned}
    for p in planned:
        for scores in p.run_dir.glob("eval-*/scores.json"):
            d = json.loads(scores.read_text())
            n = d.get("protocol", {}).get("n_generated")
            if n and d.get("seconds"):
                by_row.setdefault(p.row, []).append(sum(d["seconds"].values()) / n)
    return _fill_by_flops({row: statistics.median(v) for row, v in by_row.items()}, flops, power=1)


def plan_markdown(planned: Sequence[PlannedRun], by_notebook: bool = False) -> str:
    """The plan as a table, one line per run (first column: its rule, or with ``by_notebook`` its notebook), then
    the training and evaluation time left at the speeds measured in this cache; a row never measured is priced
    from its FLOPs (:func:`row_speeds`) and said so, and with nothing measured yet the time is not given; with
    ``by_notebook``, the time left per notebook. Then what is done, at the same speeds (:func:`_done_line`)."""
    (speeds, estimated), (per_image, eval_estimated) = row_speeds(planned), evaluation_seconds_per_image(planned)
    lines = [f"| {'notebook' if by_notebook else 'rule'} | row | seed | images seen / to see | images/s measured | training left | evaluations "
             "stored / needed |", "|---|---|---:|---:|---:|---:|---:|"]
    for p in planned:
        left, speed = p.images_left, speeds.get(p.row)
        time_left = "0" if not left else "?" if not speed else duration(left / speed) + (
            " (est.)" if p.row in estimated else "")
        own = "—" if p.measured is None else f"{p.measured[0]:.1f}" + (
            f" (CPU share {p.measured[1]:.2f})" if p.measured[1] is not None else "")
        lines.append(f"| {p.rule} | {p.row}{f' ({p.label})' if p.label else ''} | {p.seed_index} | "
                     f"{p.reached_images:,} / {p.target_images:,} | {own} | {time_left} | "
                     f"{p.evaluations_stored} / {p.evaluations_needed} |")
    seconds = [_seconds_left(p, speeds, per_image) for p in planned]
    train_s, eval_s = sum(t for t, _ in seconds), sum(e for _, e in seconds)
    how = (f"about {duration(train_s)} at each row's median speed alone (measured / CPU share"
           + (f"; estimated from FLOPs per image: {', '.join(sorted(estimated))}" if estimated else "") + ")"
           if speeds else "no run measured yet to price it")
    lines += ["", f"Training left: {sum(p.images_left for p in planned):,} images, {how}."]
    if any(p.evaluations_needed for p in planned):
        n_eval = sum(p.evaluations_needed - p.evaluations_stored for p in planned)
        order = dict.fromkeys(p.row for p in planned)
        rates = ", ".join(f"{r} {per_image[r]:.2f}" + (" (est. from FLOPs)" if r in eval_estimated else "")
                          for r in order if r in per_image)
        lines.append(f"Evaluations left: {n_eval} ({sum(p.samples_left for p in planned):,} images to generate), "
                     + (f"about {duration(eval_s)} (s/image: {rates})." if per_image else "none stored yet to price them."))
    if by_notebook and speeds:
        lines.append(_left_by_notebook(planned, speeds, per_image))
    if any(p.reached_images or p.samples_done for p in planned):
        lines.append(_done_line(planned, speeds, per_image, train_s + eval_s))
    lines.append("Speeds are those measured in this cache, scaled to a CPU of its own; on another machine they differ.")
    return "\n".join(lines)


def _seconds_left(p: PlannedRun, speeds: dict[str, float], per_image: dict[str, float]) -> tuple[float, float]:
    """The run's training and evaluation seconds left at the rows' speeds (0 where its row is not priced)."""
    speed = speeds.get(p.row)
    return (p.images_left / speed if p.images_left and speed else 0.0), p.samples_left * per_image.get(p.row, 0.0)


def _left_by_notebook(planned: Sequence[PlannedRun], speeds: dict[str, float], per_image: dict[str, float]) -> str:
    """"Left per notebook: 05 ..., 01 ...": each notebook's training and evaluation time left (the first word of
    a run's group names its notebook; a shared run counts for the first notebook asking for it)."""
    left: dict[str, list[float]] = {}
    for p in planned:
        t = left.setdefault(p.rule.split()[0], [0.0, 0.0])
        for i, seconds in enumerate(_seconds_left(p, speeds, per_image)):
            t[i] += seconds
    return "Left per notebook: " + "; ".join(f"{nb} {duration(a + b)} ({duration(a)} training, {duration(b)} "
                                              f"evaluating)" for nb, (a, b) in left.items()) + "."


def _done_line(planned: Sequence[PlannedRun], speeds: dict[str, float], per_image: dict[str, float],
               left_s: float) -> str:
    """What the campaign has done, priced like what is left (each row's median speed alone, each row's seconds
    per generated image), and the two together: the campaign's compute on this machine as if it ran through
    without a stop. Its elapsed time is longer: a stop loses the steps since the last checkpoint and the
    sampling batch in progress, and a restart reloads models and references. Not priced while a row that has
    trained or generated, or must still, has no measured speed or no stored evaluation."""
    images = sum(min(p.reached_images, p.target_images) for p in planned)
    generated = sum(p.samples_done for p in planned)
    done = (f"Done: {images:,} images trained and {generated:,} generated "
            f"({sum(p.evaluations_stored for p in planned)} evaluations)")
    unpriced = sorted({p.row for p in planned if p.row not in speeds}
                      | {p.row for p in planned if (p.samples_done or p.samples_left) and p.row not in per_image})
    if unpriced:
        return f"{done}; not priced: no measured speed or stored evaluation for {', '.join(unpriced)}."
    done_s = sum(min(p.reached_images, p.target_images) / speeds[p.row] for p in planned)
    done_s += sum(p.samples_done * per_image[p.row] for p in planned if p.samples_done)
    return (f"{done}, about {duration(done_s)} at the same speeds; done and left together, about "
            f"{duration(done_s + left_s)} of compute on this machine, not counting what stops cost (the steps "
            f"since the last checkpoint, reloading).")

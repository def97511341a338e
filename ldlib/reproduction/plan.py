"""What a profile's Table 1 campaign still needs, read from the run cache and the records
(``ldlib.runtime.records``) without training or sampling anything (``ldlib pretrain --plan``): per run, the
images it has seen and must see (none when the records answer every evaluation asked of it), its measured
training speed and the evaluations stored and needed, then the time left at the speeds measured on this
machine, and the time done at the same speeds.

A ``default`` campaign runs for days on a 2-core CPU and resumes across interruptions; the runner's suite ETA
needs an earlier run of every notebook, so a first campaign would otherwise go without one.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..runtime.progress import duration
from ..training import TrainResult
from ..training.checkpoint import latest_checkpoint, read_history
from ..training.train import SHARED_CPU
from .run_cache import recorded_run, run_dir_for
from .study import Budget
from .table1 import Protocols, row_request, rows


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


def plan_runs(preset: str, data: dict, budget: Budget, budgets: Sequence[int], seeds: int, rules: Sequence[str],
              protocols: Protocols | None = None, only: Sequence[str] = (),
              heldout_rule: str | None = None) -> list[PlannedRun]:
    """Every run ``ldlib pretrain`` would train for these arguments, in its order, with its state in the cache.
    With ``protocols`` (``table1.evaluators``), the evaluations ``--evaluate`` needs per run: one per budget (the
    largest with ``final``, the others with ``curve``) and the held-out one under ``heldout_rule`` (the profile's
    first rule; default ``rules[0]``)."""
    out = []
    last = max(budgets)
    table = [r for r in rows(preset) if not only or r.name in only]
    for rule in rules:
        asked = [] if protocols is None else [(protocols.final if b == last else protocols.curve, b) for b in budgets]
        asked += [(protocols.heldout, last)] if protocols is not None and rule == (heldout_rule or rules[0]) else []
        for k in range(seeds):
            for row in table:
                run_dir = run_dir_for(*row_request(preset, row, budget, rule, k), data)
                stored, samples_done, samples_left = _evaluations(run_dir, asked, budget.batch_size)
                reached = reached_step(run_dir) * budget.batch_size
                if stored == len(asked) and recorded_run(run_dir, last // budget.batch_size) is not None:
                    reached = max(reached, last)  # the records answer all that is asked of it: nothing to train
                out.append(PlannedRun(rule, row.name, row.model.resolutions[-1], k, run_dir, row.flops, reached, last,
                                      measured_speed(run_dir), stored, len(asked), samples_left, samples_done))
    return out


def _evaluations(run_dir: Path, asked: Sequence[tuple], batch_size: int) -> tuple[int, int, int]:
    """How many of the ``(protocol, images)`` evaluations of the run are stored, the images they generated and
    the images the others will generate."""
    stored = samples_done = samples_left = 0
    for protocol, images in asked:
        step = images // batch_size
        run = TrainResult(run_dir, step, checkpoint=run_dir / f"step-{step:08d}")  # the key reads its name only
        if protocol.is_stored(run):
            stored, samples_done = stored + 1, samples_done + protocol.n_samples
        else:
            samples_left += protocol.n_samples
    return stored, samples_done, samples_left


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


def plan_markdown(planned: Sequence[PlannedRun]) -> str:
    """The plan as a table, one line per run, then the training and evaluation time left at the speeds measured
    in this cache; a row never measured is priced from its FLOPs (:func:`row_speeds`) and said so, and with
    nothing measured yet the time is not given. Then what is done, at the same speeds (:func:`_done_line`)."""
    (speeds, estimated), (per_image, eval_estimated) = row_speeds(planned), evaluation_seconds_per_image(planned)
    lines = ["| rule | row | seed | images seen / to see | images/s measured | training left | evaluations stored / "
             "needed |", "|---|---|---:|---:|---:|---:|---:|"]
    train_s = eval_s = 0.0
    for p in planned:
        left, speed = p.images_left, speeds.get(p.row)
        time_left = "0" if not left else "?" if not speed else duration(left / speed) + (
            " (est.)" if p.row in estimated else "")
        train_s += left / speed if left and speed else 0.0
        eval_s += p.samples_left * per_image.get(p.row, 0.0)
        own = "—" if p.measured is None else f"{p.measured[0]:.1f}" + (
            f" (CPU share {p.measured[1]:.2f})" if p.measured[1] is not None else "")
        lines.append(f"| {p.rule} | {p.row} | {p.seed_index} | {p.reached_images:,} / {p.target_images:,} | {own} | "
                     f"{time_left} | {p.evaluations_stored} / {p.evaluations_needed} |")
    images_left = sum(p.images_left for p in planned)
    how = (f"about {duration(train_s)} at each row's median speed alone (measured / CPU share"
           + (f"; estimated from FLOPs per image: {', '.join(sorted(estimated))}" if estimated else "") + ")"
           if speeds else "no run measured yet to price it")
    lines += ["", f"Training left: {images_left:,} images, {how}."]
    if any(p.evaluations_needed for p in planned):
        n_eval = sum(p.evaluations_needed - p.evaluations_stored for p in planned)
        order = dict.fromkeys(p.row for p in planned)
        rates = ", ".join(f"{r} {per_image[r]:.2f}" + (" (est. from FLOPs)" if r in eval_estimated else "")
                          for r in order if r in per_image)
        lines.append(f"Evaluations left: {n_eval} ({sum(p.samples_left for p in planned):,} images to generate), "
                     + (f"about {duration(eval_s)} (s/image: {rates})." if per_image else "none stored yet to price them."))
    if any(p.reached_images or p.samples_done for p in planned):
        lines.append(_done_line(planned, speeds, per_image, train_s + eval_s))
    lines.append("Speeds are those measured in this cache, scaled to a CPU of its own; on another machine they differ.")
    return "\n".join(lines)


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

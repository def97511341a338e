"""What a profile's Table 1 campaign still needs, read from the run cache without training or sampling anything
(``ldlib pretrain --plan``): per run, the images it has seen and must see, its measured training speed and the
evaluations stored and needed, then the time left at the speeds measured on this machine.

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
from .run_cache import run_dir_for
from .study import Budget
from .table1 import Protocols, is_stored, row_request, rows


@dataclass(frozen=True)
class PlannedRun:
    """One training run of Table 1 (a row, a rule and a training seed) as the run cache holds it now."""

    rule: str
    row: str
    resolution: int  # px, the model's top resolution
    seed_index: int
    run_dir: Path
    reached_images: int
    target_images: int
    #: images/s and CPU share of this run's last training segment (:func:`measured_speed`), None before it trains
    measured: tuple[float, float | None] | None
    evaluations_stored: int
    evaluations_needed: int
    samples_left: int  # images the evaluations not stored yet will generate

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
                stored, samples_left = _evaluations(run_dir, asked, budget.batch_size)
                out.append(PlannedRun(rule, row.name, row.model.resolutions[-1], k, run_dir,
                                      reached_step(run_dir) * budget.batch_size, last, measured_speed(run_dir),
                                      stored, len(asked), samples_left))
    return out


def _evaluations(run_dir: Path, asked: Sequence[tuple], batch_size: int) -> tuple[int, int]:
    """How many of the ``(protocol, images)`` evaluations of the run are stored, and the images the others will
    generate."""
    stored = samples_left = 0
    for protocol, images in asked:
        step = images // batch_size
        run = TrainResult(run_dir, step, checkpoint=run_dir / f"step-{step:08d}")  # the key reads its name only
        done = is_stored(protocol, run)
        stored, samples_left = stored + done, samples_left + (0 if done else protocol.n_samples)
    return stored, samples_left


def row_speeds(planned: Sequence[PlannedRun]) -> dict[str, float]:
    """Each row's median speed alone (:func:`alone_speed`) over its measured runs (the schedule rule and the seed
    do not change the work)."""
    by_row: dict[str, list[float]] = {}
    for p in planned:
        if p.measured is not None:
            by_row.setdefault(p.row, []).append(alone_speed(p.measured))
    return {row: statistics.median(v) for row, v in by_row.items()}


def evaluation_seconds_per_image(planned: Sequence[PlannedRun]) -> dict[int, float]:
    """Per resolution, the median wall seconds per generated image (sampling, features and scores) of the
    evaluations stored in the planned runs' folders."""
    per_res: dict[int, list[float]] = {}
    for p in planned:
        for scores in p.run_dir.glob("eval-*/scores.json"):
            d = json.loads(scores.read_text())
            n = d.get("protocol", {}).get("n_generated")
            if n and d.get("seconds"):
                per_res.setdefault(p.resolution, []).append(sum(d["seconds"].values()) / n)
    return {res: statistics.median(v) for res, v in per_res.items()}


def plan_markdown(planned: Sequence[PlannedRun]) -> str:
    """The plan as a table, one line per run, then the training and evaluation time left at the speeds measured
    in this cache (a row none of whose runs was measured is left out of the sum, and said so)."""
    speeds, per_image = row_speeds(planned), evaluation_seconds_per_image(planned)
    lines = ["| rule | row | seed | images seen / to see | images/s measured | training left | evaluations stored / "
             "needed |", "|---|---|---:|---:|---:|---:|---:|"]
    train_s = eval_s = 0.0
    unmeasured, unpriced = set(), set()
    for p in planned:
        left, speed = p.images_left, speeds.get(p.row)
        if left and speed is None:
            unmeasured.add(p.row)
        time_left = "0" if not left else duration(left / speed) if speed else "?"
        train_s += left / speed if left and speed else 0.0
        if p.samples_left and p.resolution not in per_image:
            unpriced.add(p.resolution)
        eval_s += p.samples_left * per_image.get(p.resolution, 0.0)
        own = "—" if p.measured is None else f"{p.measured[0]:.1f}" + (
            f" (CPU share {p.measured[1]:.2f})" if p.measured[1] is not None else "")
        lines.append(f"| {p.rule} | {p.row} | {p.seed_index} | {p.reached_images:,} / {p.target_images:,} | {own} | "
                     f"{time_left} | {p.evaluations_stored} / {p.evaluations_needed} |")
    skipped = f" (not counted, no measured run: {', '.join(sorted(unmeasured))})" if unmeasured else ""
    lines += ["", f"Training left: {sum(p.images_left for p in planned):,} images, about {duration(train_s)} at each "
                  f"row's median speed alone (measured / CPU share){skipped}."]
    if any(p.evaluations_needed for p in planned):
        n_eval = sum(p.evaluations_needed - p.evaluations_stored for p in planned)
        rates = ", ".join(f"{s:.2f} s/image at {r} px" for r, s in sorted(per_image.items())) or "none measured"
        unpriced_text = (f"; not counted: {', '.join(f'{r} px' for r in sorted(unpriced))}, no stored evaluation"
                         if unpriced else "")
        lines.append(f"Evaluations left: {n_eval} ({sum(p.samples_left for p in planned):,} images to generate), "
                     f"about {duration(eval_s)} ({rates}{unpriced_text}).")
    lines.append("Speeds are those measured in this cache, scaled to a CPU of its own; on another machine they differ.")
    return "\n".join(lines)

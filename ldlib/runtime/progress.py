"""What long work is doing right now, for whoever runs it headless: ``ldlib reproduce`` sets ``LDLIB_PROGRESS`` to
a file, the library appends one JSON line per update (what, which, how far, how fast), and the runner prints
the newest line with the suite's ETA while a notebook's cell is busy (a training cell can run for an hour).

Without ``LDLIB_PROGRESS`` nothing is written. Updates are throttled to one every few seconds per task.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

PROGRESS_ENV = "LDLIB_PROGRESS"
#: seconds between two written updates of one task (the first and the last are always written)
INTERVAL_S = 5.0

_last: dict[tuple[str, str], float] = {}
_started: dict[tuple[str, str], tuple[float, int]] = {}


def report(task: str, name: str, done: int, total: int, **extra) -> None:
    """Task ``task`` ("training", "sampling", "features", ...) of ``name`` has done ``done`` of ``total`` units;
    ``extra`` adds numbers such as images/s. The ETA is extrapolated from this task's own pace."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    key, now = (task, name), time.time()
    start, first = _started.setdefault(key, (now, done))
    if done < total and now - _last.get(key, 0.0) < INTERVAL_S:
        return
    _last[key] = now
    rate = (done - first) / (now - start) if now > start and done > first else None
    eta = (total - done) / rate if rate else None
    line = {"time": now, "task": task, "name": name, "done": done, "total": total, "eta_s": eta, **extra}
    with open(path, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def latest(path: Path) -> dict | None:
    """The newest update in a progress file, or None."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            lines = fh.read().decode(errors="replace").strip().splitlines()
        return json.loads(lines[-1]) if lines else None
    except (OSError, json.JSONDecodeError, IndexError):
        return None


def describe(update: dict) -> str:
    """One line for a person: ``training cpu16-layered64-...: step 120/400 (30%), 35.2 images/s, ETA 8 min``."""
    unit = {"training": "step", "sampling": "batch", "features": "batch"}.get(update["task"], "")
    text = (f"{update['task']} {update['name']}: {unit + ' ' if unit else ''}{update['done']}/{update['total']} "
            f"({100 * update['done'] / max(1, update['total']):.0f}%)")
    if update.get("images_per_s"):
        text += f", {update['images_per_s']:.1f} images/s"
    if update.get("eta_s") is not None:
        text += f", ETA {duration(update['eta_s'])}"
    return text


def duration(seconds: float) -> str:
    """``42 s``, ``8 min``, ``1 h 20 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h} h {m} min"

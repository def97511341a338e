"""``ldlib reproduce``: run the notebooks headless with papermill and collect their results.

For every selected notebook the runner injects the profile's parameters into the cell tagged
``parameters`` and executes it in a staging folder. Then:

* success: ``results/<profile>/<notebook>/`` is replaced by the new run (the replaced one is kept in
  ``results/<profile>/.previous/<notebook>/`` and the replacement is announced);
* failure: the partially executed notebook is kept in ``results/<profile>/<notebook>.failed/``, the
  notebook's earlier successful results stay where they were, and the run exits non-zero.

Each notebook folder holds the executed notebook, ``metrics.json``, its PNG figures and ``provenance.json``
(git commit and dirty flag, parameters, library versions, device, seed, wall time). Finally
``results/<profile>/summary.md`` lists every reproduced number next to the paper's.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..runtime import progress as live
from ..runtime.files import atomic_write_text, read_json
from .parameters import INDICATIVE, NOTEBOOKS, PROFILES, NotebookSpec, ParameterError, resolve_names
from .recorder import VERDICT_LEGEND, claims_table, metrics_table
from .report import CLAIMS_FIGURE, tally_markdown, write_claims_figure, write_report

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ldlib", "torch", "numpy", "scipy", "matplotlib", "papermill", "transformers", "torchmetrics")


@dataclass
class NotebookResult:
    name: str
    ok: bool
    folder: Path
    wall_s: float
    error: str = ""


# --------------------------------------------------------------------------------------------- planning


def parse_overrides(items: Sequence[str], names: Sequence[str], registry: Mapping[str, NotebookSpec]) -> dict:
    """``-p key=value`` (every selected notebook that has ``key``) or ``-p notebook.key=value`` (one
    notebook) into ``{notebook: {key: value}}``. Values are Python literals; anything else is a string."""
    out: dict[str, dict] = {n: {} for n in names}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"-p expects NAME=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if "." in key:
            nb, key = key.split(".", 1)
            if nb not in out:
                raise ParameterError(f"-p {item!r}: notebook {nb!r} is not selected; selected: {', '.join(names)}")
            targets = [nb]
        else:
            targets = [n for n in names if key in registry[n].all_params()]
            if not targets:
                allowed = sorted({p for n in names for p in registry[n].all_params()})
                raise ParameterError(f"unknown parameter {key!r}; the selected notebooks accept: {', '.join(allowed)}")
        for nb in targets:
            out[nb][key] = value
    return out


def plan(
    profile: str,
    only: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    seed: int = 0,
    registry: Mapping[str, NotebookSpec] = NOTEBOOKS,
) -> list[tuple[NotebookSpec, dict]]:
    """Validate a whole run before any work: profile, notebook names, every parameter value."""
    if profile not in PROFILES:
        raise ParameterError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    names = resolve_names(only, registry)
    per_nb = parse_overrides(overrides, names, registry)
    return [(registry[n], registry[n].parameters(profile, per_nb[n], seed=seed)) for n in names]


# ------------------------------------------------------------------------------------------ provenance


def git_state(root: Path = PROJECT_ROOT) -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", ".", ":(exclude)results"))
        return {"commit": commit, "dirty": dirty}
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": None, "dirty": None}


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return versions


def device_info() -> dict:
    import torch

    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor()
    info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


# ----------------------------------------------------------------------------------------- execution


class RunLock:
    """One ``reproduce`` per profile folder at a time."""

    def __init__(self, folder: Path):
        self.path = folder / ".lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = self.path.read_text().strip() or "?"
            alive = pid.isdigit() and Path(f"/proc/{pid}").exists()
            if alive:
                raise RuntimeError(f"another `ldlib reproduce` (pid {pid}) is writing {self.path.parent}") from None
            self.path.unlink()
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _ipc_kernel_manager(socket_dir: Path):
    """A kernel manager whose kernel talks over local IPC sockets instead of unencrypted TCP (ipykernel warns
    about the latter at every start). The sockets live in ``socket_dir``: by default jupyter_client puts them
    in the kernel's working directory (``notebooks/``), where an interrupted run leaves them behind."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(socket_dir / "kernel")

    return IPCKernelManager


#: seconds between two lines of :class:`Watcher`
WATCH_EVERY_S = 30.0
#: bytes of the progress file's end that :class:`Watcher` reads (a few dozen updates)
TAIL_BYTES = 16384


def recent_updates(path: Path, n_bytes: int = TAIL_BYTES) -> list[dict]:
    """The updates in the last ``n_bytes`` of a progress file (``ldlib.runtime.progress``), oldest first; [] when
    there is none. A line cut by the window's start, or half written, is skipped."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - n_bytes))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    updates = []
    for text in lines:
        try:
            updates.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return [u for u in updates if isinstance(u, dict) and {"time", "task", "name", "done", "total"} <= u.keys()]


def pass_eta(updates: Sequence[Mapping]) -> float | None:
    """Seconds left in the newest update's task, from the pace of its current pass: the run of updates of that
    task (same task, name and total) whose count never falls, back from the newest. None with one update only.

    The library's own ``eta_s`` times a task from its first update in the process, so a task that runs once per
    evaluation under one name (Inception features: 16 batches in ~2 min) was given the pace of every pass since
    the first, an ETA of an hour for two minutes' work. (Fixing that in ``ldlib.runtime.progress`` would change
    the training and evaluation code's fingerprints, hence every run and evaluation key of the campaign that
    uses it; the runner, outside them, computes the ETA instead.)"""
    if not updates:
        return None
    last = updates[-1]
    key = (last["task"], last["name"], last["total"])
    start = last
    for u in reversed(updates[:-1]):
        if (u["task"], u["name"], u["total"]) != key or u["done"] > start["done"]:
            break
        start = u
    if last["done"] >= last["total"]:
        return 0.0
    if last["done"] <= start["done"] or last["time"] <= start["time"]:
        return None
    rate = (last["done"] - start["done"]) / (last["time"] - start["time"])
    return (last["total"] - last["done"]) / rate


class Watcher(threading.Thread):
    """While a notebook runs, print what it is doing every ``every`` seconds: the newest line of its progress
    file (``ldlib.runtime.progress``: which model is training or being evaluated, how far, and the ETA of that
    pass: :func:`pass_eta`) and the suite's ETA from ``expected_s`` and ``after_s`` (this notebook's expected
    seconds and those of the notebooks after it, from their last runs; None if unknown)."""

    def __init__(self, name: str, path: Path, expected_s: float | None, after_s: float | None,
                 log: Callable[[str], None], every: float | None = None):
        super().__init__(daemon=True)
        self.name, self.path, self.expected_s, self.after_s, self.log = name, path, expected_s, after_s, log
        self.every = WATCH_EVERY_S if every is None else every
        self.started = time.perf_counter()
        self.done = threading.Event()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        updates = recent_updates(self.path)
        update = {**updates[-1], "eta_s": pass_eta(updates)} if updates else None
        what = live.describe(update) if update else "running"
        if update and time.time() - update["time"] > 2 * self.every:  # busy with something that does not report
            what += f" (last update {live.duration(time.time() - update['time'])} ago)"
        if self.expected_s is None or self.after_s is None:
            suite = ("suite ETA unknown (no earlier run of every notebook in this profile; `ldlib reproduce --plan` "
                     "prices the training and scoring left)")
        else:
            suite = f"suite ETA {live.duration(max(0.0, self.expected_s - elapsed) + self.after_s)}"
        return f"[{self.name}] {live.duration(elapsed)} in: {what}; {suite}"

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.log(self.line())


def _same_run(previous: Mapping, params: Mapping) -> bool:
    """Whether ``previous`` (a ``provenance.json``) is a successful run with ``params`` (compared as JSON: tuples
    come back as lists)."""
    def norm(d: Mapping) -> str:
        return json.dumps({k: v for k, v in d.items() if k != "output_dir"}, sort_keys=True, default=str)
    return previous.get("status") == "ok" and norm(previous.get("parameters", {})) == norm(params)


def longest_wall_time(previous: Mapping, params: Mapping, wall: float) -> float:
    """The longest wall time of a notebook's successful runs with ``params``, this one (``wall``) included.
    A re-run that finds its models in the run cache takes a fraction of a fresh run, so the last wall time alone
    would make the next fresh run's ETA far too short; other parameters start the count again."""
    if _same_run(previous, params):
        return max(wall, previous.get("longest_wall_time_s", previous.get("wall_time_s", 0.0)))
    return wall


def expected_seconds(profile_dir: Path, jobs: Sequence[tuple[NotebookSpec, dict]]) -> dict[str, float | None]:
    """Each notebook's expected wall time from its successful runs in ``profile_dir``: the longest run with the
    same parameters (a fresh run, not a re-run from the cache; :func:`longest_wall_time`), else the last run's;
    None when there is none."""
    out = {}
    for spec, params in jobs:
        prov = read_json(profile_dir / spec.name / "provenance.json")
        last = prov.get("wall_time_s")
        out[spec.name] = prov.get("longest_wall_time_s", last) if _same_run(prov, params) else last
    return out


def _replace_dir(src: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dest)


def run_notebook(
    spec: NotebookSpec,
    params: dict,
    notebooks_dir: Path,
    profile_dir: Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
    expected_s: float | None = None,
    after_s: float | None = 0.0,
) -> NotebookResult:
    """Execute one notebook into ``profile_dir`` (see the module docstring). With ``progress``, a line every 30 s
    says what the notebook is doing and when the suite should end (``expected_s``: this notebook's expected
    seconds, ``after_s``: those of the notebooks after it)."""
    src = notebooks_dir / spec.filename
    if not src.exists():
        raise FileNotFoundError(f"notebook {src} not found; run `ldlib reproduce` from a clone of the project")
    staging = profile_dir / ".running" / spec.name
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    params = {**params, "output_dir": str(staging.resolve())}
    progress_file = staging / ".progress.jsonl"
    previous = read_json(profile_dir / spec.name / "provenance.json")
    git = git_state()  # the code the notebook runs with, before anything can change it
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    watcher = Watcher(spec.name, progress_file, expected_s, after_s, log) if progress else None
    if watcher:
        watcher.start()
    try:
        error = _execute(src, staging / spec.filename, params, notebooks_dir, progress_file)
    finally:
        if watcher:
            watcher.done.set()
    wall = time.perf_counter() - t0
    record = {
        "notebook": spec.name,
        "profile": params["profile"],
        "status": "failed" if error else "ok",
        "error": error or None,
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 2),
        "longest_wall_time_s": round(longest_wall_time(previous, params, wall), 2),
        "seeds": {"seed": params["seed"]},
        "parameters": {k: v for k, v in params.items() if k != "output_dir"},
        "git": git,
        "versions": library_versions(),
        "device": device_info(),
    }
    atomic_write_text(staging / "provenance.json", json.dumps(record, indent=2))
    return _publish(spec, staging, profile_dir, error, wall, log)


def _execute(src: Path, dest: Path, params: dict, cwd: Path, progress_file: Path) -> str:
    """Run ``src`` with papermill into ``dest``; the error ("" if none). The kernel must be this interpreter (the
    one with ldlib installed), whatever PATH says; it reports its progress to ``progress_file``, which the
    watcher reads, and its sockets go to a temporary folder (a short path: a Unix socket's name is limited to
    ~100 bytes)."""
    import papermill as pm

    saved = {k: os.environ.get(k) for k in ("PATH", live.PROGRESS_ENV)}
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{saved['PATH'] or ''}"
    os.environ[live.PROGRESS_ENV] = str(progress_file)
    sockets = tempfile.TemporaryDirectory(prefix="ldlib-kernel-")
    try:
        pm.execute_notebook(
            str(src), str(dest), parameters=params, kernel_name="python3", language="python",
            cwd=str(cwd), progress_bar=False, log_output=False, report_mode=False,
            kernel_manager_class=_ipc_kernel_manager(Path(sockets.name)),
        )
        return ""
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        return f"{type(exc).__name__}: {exc}"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        progress_file.unlink(missing_ok=True)
        sockets.cleanup()


def _publish(spec: NotebookSpec, staging: Path, profile_dir: Path, error: str, wall: float,
             log: Callable[[str], None]) -> NotebookResult:
    """Move a finished notebook's folder into place: a failed one to ``<name>.failed/`` (earlier results stay), a
    good one over the earlier results, which move to ``.previous/``."""
    final = profile_dir / spec.name
    if error:
        failed = profile_dir / f"{spec.name}.failed"
        _replace_dir(staging, failed)
        kept = " (earlier results kept in place)" if final.exists() else ""
        log(f"[{spec.name}] FAILED after {wall:.1f}s; partial notebook in {failed}{kept}")
        return NotebookResult(spec.name, False, failed, wall, error)
    if final.exists():
        old = read_json(final / "provenance.json")
        prev = profile_dir / ".previous" / spec.name
        _replace_dir(final, prev)
        log(f"[{spec.name}] replacing results of {old.get('started_utc', '?')} "
            f"(commit {str((old.get('git') or {}).get('commit'))[:10]}); the old copy is in {prev}")
    _replace_dir(staging, final)
    stale = profile_dir / f"{spec.name}.failed"
    if stale.exists():
        shutil.rmtree(stale)
    log(f"[{spec.name}] ok in {wall:.1f}s -> {final}")
    return NotebookResult(spec.name, True, final, wall)


def reproduce(
    profile: str,
    only: Sequence[str] | None = None,
    overrides: Sequence[str] = (),
    results_dir: Path | str = PROJECT_ROOT / "results",
    notebooks_dir: Path | str = PROJECT_ROOT / "notebooks",
    seed: int = 0,
    registry: Mapping[str, NotebookSpec] = NOTEBOOKS,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[NotebookResult]:
    """Run the selected notebooks of ``profile``; see the module docstring for what is written where."""
    jobs = plan(profile, only, overrides, seed, registry)  # raises before any work on bad input
    notebooks_dir = Path(notebooks_dir)
    missing = [s.filename for s, _ in jobs if not (notebooks_dir / s.filename).exists()]
    if missing:
        raise FileNotFoundError(f"notebooks {missing} not found in {notebooks_dir}")
    profile_dir = Path(results_dir) / profile
    expected = expected_seconds(profile_dir, jobs)
    results = []
    with RunLock(profile_dir):
        for i, (spec, params) in enumerate(jobs, 1):
            rest = [expected[s.name] for s, _ in jobs[i:]]
            after = None if None in rest else sum(rest)
            took = live.duration(expected[spec.name]) if expected[spec.name] else "unknown"
            log(f"[{i}/{len(jobs)}] {spec.name} (profile {profile}; expected {took}, its longest earlier run)")
            results.append(run_notebook(spec, params, notebooks_dir, profile_dir, progress, log,
                                        expected[spec.name], after))
        shutil.rmtree(profile_dir / ".running", ignore_errors=True)
        summary = write_summary(profile_dir, registry)
        report = write_report(profile_dir, registry)
    log(f"summary: {summary}")
    log(f"report: {report}")
    return results


# ------------------------------------------------------------------------------------------- summary


def write_summary(profile_dir: Path, registry: Mapping[str, NotebookSpec] = NOTEBOOKS) -> Path:
    """``summary.md``: for every notebook with results in ``profile_dir``, its numbers next to the paper's."""
    profile = profile_dir.name
    lines = [
        f"# Reproduction summary: profile `{profile}`",
        "",
        "Every number below was computed by the notebook named above it; the paper's numbers appear only in "
        f"the column labelled *paper (reference)*. {VERDICT_LEGEND} In the tables of numbers, 'matches' means "
        "the paper's number lies in our 95% interval or within the stated tolerance; 'no paper number' means the "
        "paper prints none for that quantity.",
        "",
        *([f"**Indicative results** ({INDICATIVE[profile]}).", ""] if profile in INDICATIVE else []),
        "| notebook | status | commit | started (UTC) | wall time |",
        "|---|---|---|---|---|",
    ]
    sections, claims = [], []
    names = sorted({p.name.removesuffix(".failed") for p in profile_dir.iterdir()
                    if p.is_dir() and not p.name.startswith(".")}) if profile_dir.exists() else []
    for name in names:
        ok_dir, failed_dir = profile_dir / name, profile_dir / f"{name}.failed"
        prov = read_json(ok_dir / "provenance.json")
        status = "ok" if prov else "failed"
        if failed_dir.exists():
            fprov = read_json(failed_dir / "provenance.json")
            status = f"last run failed ({fprov.get('started_utc', '?')}); " + ("older results shown" if prov else "no results")
        git = prov.get("git") or {}
        commit = (git.get("commit") or "?")[:10] + (" (dirty)" if git.get("dirty") else "")
        lines.append(f"| [{name}]({name}/{name}.ipynb) | {status} | {commit if prov else '—'} | "
                     f"{prov.get('started_utc', '—')} | {prov.get('wall_time_s', '—')} s |")
        metrics = read_json(ok_dir / "metrics.json")
        if not metrics:
            continue
        title = registry[name].title if name in registry else name
        sections += [f"## {name}", "", title, ""]
        claims += metrics.get("claims", [])
        if metrics.get("claims"):
            sections += ["### The paper's claims, checked", "", claims_table(metrics["claims"]), ""]
        if metrics.get("metrics"):
            sections += ["### Numbers", "", metrics_table(metrics["metrics"]), ""]
        if metrics.get("figures"):
            sections += ["Figures: " + ", ".join(f"[{f}]({name}/{f})" for f in metrics["figures"]), ""]
    if claims:
        lines += ["", "The paper's claims by verdict:", "", *tally_markdown(claims)]
    if write_claims_figure(profile_dir) is not None:
        lines += ["", "Every empirical claim at a glance: its paired difference with the 95% interval, divided by the "
                  "paper's effect size and signed so that right is the paper's direction (colour: verdict).", "",
                  f"![every empirical claim]({CLAIMS_FIGURE})"]
    path = profile_dir / "summary.md"
    atomic_write_text(path, "\n".join(lines + [""] + sections))
    return path

"""Wall time of a whole ``ldlib reproduce`` suite, before vs after a change, from what the runs left behind.

Each executed notebook records its wall time in ``results/<profile>/<notebook>/provenance.json``, and each
cached training run records its throughput in its last checkpoint's ``history.json``. This script reads both
for two suites (no timing of its own) and writes ``results/bench/suite-<profile>.json`` and ``.md``:

    .venv/bin/python benchmarks/suite.py --profile default \\
        --before git:f5e1232 --before-cache /path/to/old/cache \\
        --after results/default --after-cache /path/to/new/cache [--after-paused-s 727] [--after-interrupted-s 1525]

``--before``/``--after`` are a results directory or ``git:<rev>`` (that commit's ``results/<profile>``).
Notebooks share cached runs, so a notebook's own time depends on which notebook ran first; compare totals.
A run's images/s is that of the training invocation that finished it (a resumed run reports its last segment).
A suite killed part-way and restarted with ``--only`` reuses the runs its first attempt finished, so the notebook that
was interrupted records only its second attempt: give the first attempt's working seconds (wall time less pauses,
from the notebook's start to the kill) as ``--after-interrupted-s``; they are added to the total and shown as a row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import subprocess
from pathlib import Path

# a run whose process got less than this share of its threads' time was contended
from ldlib.training import SHARED_CPU

ROOT = Path(__file__).resolve().parent.parent
#: throughputs of one run in the two suites further apart than this factor mean one of them was contended
OUTLIER = 1.3


def notebook_times(source: str, profile: str) -> dict[str, dict]:
    """``{notebook: provenance subset}`` from a results directory or ``git:<rev>``."""
    if source.startswith("git:"):
        rev = source[4:]
        listing = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{rev}:results/{profile}"],
                                 capture_output=True, text=True)
        if listing.returncode:
            raise SystemExit(f"no results/{profile} at {rev}: {listing.stderr.strip()}")
        texts = {}
        for name in listing.stdout.split():
            shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:results/{profile}/{name}/provenance.json"],
                                   capture_output=True, text=True)
            if not shown.returncode:
                texts[name] = shown.stdout
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise SystemExit(f"{folder} is not a results directory (give a folder or git:<rev>)")
        texts = {p.parent.name: p.read_text() for p in sorted(folder.glob("*/provenance.json"))}
    if not texts:
        raise SystemExit(f"no notebook provenance found in {source}")
    out = {}
    for name, text in sorted(texts.items()):
        prov = json.loads(text)
        out[name] = {"wall_time_s": prov.get("wall_time_s"), "status": prov.get("status"),
                     "started_utc": prov.get("started_utc"), "commit": (prov.get("git") or {}).get("commit")}
    return out


def training_runs(cache: Path | None) -> dict[str, dict]:
    """``{config key: run name without its hash, steps, batch, images/s, training seconds}`` for finished runs."""
    if cache is None:
        return {}
    runs_dir = cache / "runs" if (cache / "runs").is_dir() else cache
    if not runs_dir.is_dir():
        raise SystemExit(f"{cache} holds no runs/ folder (it should be an LDLIB_CACHE)")
    found = []
    for latest in sorted(runs_dir.glob("*/latest")):
        ckpt = latest.parent / latest.read_text().strip()
        try:
            history = json.loads((ckpt / "history.json").read_text())
            config = json.loads((ckpt / "config.json").read_text())
            train = config["train"]
        except (OSError, ValueError, KeyError):
            continue
        done = len(history.get("losses", []))
        ips = history.get("images_per_s")
        if done < train["steps"] or not ips:
            continue
        name = re.sub(r"-[0-9a-f]{12}$", "", latest.parent.name)
        found.append((name, config, {
            "steps": train["steps"], "batch_size": train["batch_size"], "images_per_s": ips,
            "train_s": train["steps"] * train["batch_size"] / ips, "cpu_share": history.get("cpu_share")}))
    # A run's folder is its name plus a hash that also covers the code, and a notebook that trains a model first
    # names it, so the same experiment has another folder in each suite: runs are matched by their config
    # (and, for stacked models, whose config equals a fresh model's, by the stacking suffix of their name).
    out = {}
    for name, config, row in found:
        stacked = re.search(r"stacked(-[a-z0-9]+)?$", name)
        key = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10] + (f":{stacked.group(0)}" if stacked else "")
        if key in out:
            key = f"{key}:{name}"
        out[key] = dict(row, name=name, noise=config.get("diffusion", {}).get("noise_kind"))
    return out


def compare(before: dict, after: dict, runs_before: dict, runs_after: dict,
            paused: tuple[float, float] = (0.0, 0.0), interrupted: tuple[float, float] = (0.0, 0.0)) -> dict:
    """Per-notebook and total wall times (totals less the seconds each suite was paused, e.g. with SIGSTOP to
    measure something else on an otherwise idle machine, plus the working seconds of an interrupted attempt whose
    finished runs a restart reused) and the training runs of both suites."""
    def total(times):
        return sum(t["wall_time_s"] or 0.0 for t in times.values())

    report = {"notebooks": {}, "runs": []}
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, {}).get("wall_time_s"), after.get(name, {}).get("wall_time_s")
        report["notebooks"][name] = {"before_s": b, "after_s": a}
    report["total_before_s"] = total(before) - paused[0] + interrupted[0]
    report["total_after_s"] = total(after) - paused[1] + interrupted[1]
    report["paused_s"] = {"before": paused[0], "after": paused[1]}
    report["interrupted_s"] = {"before": interrupted[0], "after": interrupted[1]}
    report["commits"] = {"before": sorted({t.get("commit") or "?" for t in before.values()}),
                         "after": sorted({t.get("commit") or "?" for t in after.values()})}
    # A suite still running (or one that failed part-way) has no total to compare, and neither has one whose
    # notebooks come from several commits (one re-run on top of older results): a suite is one run of one commit.
    report["complete"] = (set(before) == set(after)
                          and all(t.get("status") == "ok" for t in (*before.values(), *after.values()))
                          and all(len(c) == 1 for c in report["commits"].values()))
    report["total_ratio"] = (report["total_before_s"] / report["total_after_s"]
                             if report["complete"] and report["total_after_s"] else None)
    rows = []
    for key in set(runs_before) | set(runs_after):
        b, a = runs_before.get(key, {}), runs_after.get(key, {})
        names = [n for n in dict.fromkeys([b.get("name"), a.get("name")]) if n]
        rows.append({"run": " = ".join(names), "config": key, "noise": (b or a).get("noise"),
                     "before_images_per_s": b.get("images_per_s"), "after_images_per_s": a.get("images_per_s"),
                     "before_train_s": b.get("train_s"), "after_train_s": a.get("train_s"),
                     "before_cpu_share": b.get("cpu_share"), "after_cpu_share": a.get("cpu_share")})
    report["runs"] = sorted(rows, key=lambda r: (r["run"], r["config"]))
    both = [r for r in report["runs"] if r["before_images_per_s"] and r["after_images_per_s"]]
    if both:
        report["median_images_per_s"] = {"before": statistics.median(r["before_images_per_s"] for r in both),
                                         "after": statistics.median(r["after_images_per_s"] for r in both),
                                         "runs": len(both)}
        report["train_s_sum"] = {"before": sum(r["before_train_s"] for r in both),
                                 "after": sum(r["after_train_s"] for r in both)}
        # A run that shared the machine with other work trains several times slower; its twin in the other suite
        # shows it. Runs whose throughputs differ by more than OUTLIER are flagged and left out of the like-for-like
        # sum, which is what says whether the code got faster.
        # Runs trained since the CPU share was recorded say so themselves.
        for r in both:
            ratio = r["after_images_per_s"] / r["before_images_per_s"]
            r["outlier"] = "before slower" if ratio > OUTLIER else "after slower" if ratio < 1 / OUTLIER else None
            shared = [side for side in ("before", "after") if (r.get(f"{side}_cpu_share") or 1.0) < SHARED_CPU]
            if shared and not r["outlier"]:
                r["outlier"] = f"{' and '.join(shared)} CPU share < {SHARED_CPU}"
        alike = [r for r in both if not r["outlier"]]
        if alike:
            report["like_for_like"] = {"runs": len(alike), "before_train_s": sum(r["before_train_s"] for r in alike),
                                       "after_train_s": sum(r["after_train_s"] for r in alike),
                                       "outlier_factor": OUTLIER}
    return report


def _f(x, nd=0) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def markdown(report: dict, profile: str, labels: tuple[str, str]) -> str:
    lines = [f"# `{profile}` suite: {labels[0]} vs {labels[1]}", "",
             "Notebooks share cached training runs, so one notebook's time depends on the order they ran in; "
             "compare the totals.", "", "| notebook | before s | after s |", "|---|---:|---:|"]
    for name, r in report["notebooks"].items():
        lines.append(f"| {name} | {_f(r['before_s'])} | {_f(r['after_s'])} |")
    for key, label, sign in (("paused_s", "paused (subtracted)", "-"),
                             ("interrupted_s", "interrupted attempt, before its restart (added)", "+")):
        seconds = report.get(key, {})
        if any(seconds.values()):
            cells = [f"{sign}{seconds[k]:.0f}" if seconds[k] else "0" for k in ("before", "after")]
            lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines.append(f"| **total** | **{_f(report['total_before_s'])}** | **{_f(report['total_after_s'])}** |")
    if report.get("total_ratio"):
        lines += ["", f"Before / after: x{report['total_ratio']:.2f}."]
    elif not report.get("complete", True):
        lines += ["", "**Incomplete**: the suites do not each hold the same notebooks, all run successfully at one "
                  f"commit (before: {', '.join(report['commits']['before'])}; after: "
                  f"{', '.join(report['commits']['after'])}); the totals are not comparable yet."]
    if report["runs"]:
        lines += ["", "Training runs (throughput of the invocation that finished each run; training seconds = "
                  "steps x batch / images/s):", "",
                  "| run | noise | before img/s | after img/s | before train s | after train s | CPU share before / after |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for r in report["runs"]:
            flag = f" ({r['outlier']}: contended?)" if r.get("outlier") else ""
            lines.append(f"| {r['run']}{flag} | {r.get('noise') or '-'} | {_f(r['before_images_per_s'], 1)} | {_f(r['after_images_per_s'], 1)} | "
                         f"{_f(r['before_train_s'])} | {_f(r['after_train_s'])} | "
                         f"{_f(r.get('before_cpu_share'), 2)} / {_f(r.get('after_cpu_share'), 2)} |")
        if "median_images_per_s" in report:
            m, s = report["median_images_per_s"], report["train_s_sum"]
            lines += ["", f"Runs in both suites: {m['runs']}; median images/s {m['before']:.1f} -> {m['after']:.1f}; "
                      f"training seconds summed {s['before']:.0f} -> {s['after']:.0f}."]
        if "like_for_like" in report:
            a = report["like_for_like"]
            lines += ["", f"Like for like ({a['runs']} runs whose throughputs agree within x{a['outlier_factor']}): "
                      f"training seconds {a['before_train_s']:.0f} -> {a['after_train_s']:.0f} "
                      f"(x{a['before_train_s'] / a['after_train_s']:.2f})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--before", required=True, help="results directory or git:<rev>")
    ap.add_argument("--after", required=True, help="results directory or git:<rev>")
    ap.add_argument("--before-cache", type=Path, help="LDLIB_CACHE the before suite trained into")
    ap.add_argument("--after-cache", type=Path, help="LDLIB_CACHE the after suite trained into")
    for side in ("before", "after"):
        ap.add_argument(f"--{side}-paused-s", type=float, default=0.0, help=f"seconds the {side} suite was paused")
        ap.add_argument(f"--{side}-interrupted-s", type=float, default=0.0,
                        help=f"working seconds of an interrupted first attempt of the {side} suite whose finished "
                             "runs its restart reused (added to the total)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    ap.add_argument("--force", action="store_true", help="replace an existing suite-<profile> report")
    args = ap.parse_args()

    before, after = notebook_times(args.before, args.profile), notebook_times(args.after, args.profile)
    report = compare(before, after, training_runs(args.before_cache), training_runs(args.after_cache),
                     (args.before_paused_s, args.after_paused_s),
                     (args.before_interrupted_s, args.after_interrupted_s))
    report.update(profile=args.profile, before=args.before, after=args.after,
                  before_notebooks=before, after_notebooks=after)
    out_json = args.out / f"suite-{args.profile}.json"
    if out_json.exists() and not args.force:
        raise SystemExit(f"{out_json} exists; pass --force to replace it")
    args.out.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report, args.profile, (args.before, args.after))
    out_json.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

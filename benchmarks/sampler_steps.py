"""How many sampling steps an evaluation needs: FID and KID against the number of steps for DDIM and
DPM-Solver++(2M), on a single-resolution and a layered model of Table 1, with DDIM at the most steps as the
reference. The chosen count is the fewest steps at which every model's FID and KID lie inside the reference's
95% intervals (same prompts, same noise seeds, so the comparison is paired by construction).

    .venv/bin/python benchmarks/sampler_steps.py [--preset cpu16] [--models single64 layered64] \
        [--n-samples 256] [--steps 5 10 15 25 50] [--reference-steps 100]
    -> results/bench/sampler-steps.json, .md and .png

Models come from the run cache (trained as notebook 05 trains them, so the two share runs); every evaluation is
stored in its run's folder, so a re-run with more step counts or samplers computes only what is new.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def study(args) -> dict:
    from ldlib.data import data_spec
    from ldlib.evaluation import Evaluator
    from ldlib.reproduction import table1

    spec = data_spec(args.data, seed=args.seed)
    table = table1.train_rows(args.preset, spec, args.budget_images, args.batch_size, args.lr, seed=args.seed,
                              only=tuple(args.models))
    grid = [("ddim", args.reference_steps)] + [(m, s) for m in args.methods for s in args.steps]
    base = Evaluator(spec, args.n_samples, args.reference_steps, args.guidance, seed=args.seed,
                     n_reference=args.n_reference, judge_steps=args.judge_steps, n_boot=args.n_boot)
    points = []
    for row in table:
        for method, steps in grid:
            start = time.perf_counter()
            result = base.with_sampler(method, steps)(row.run)
            s = result.scores
            points.append({"model": row.name, "method": method, "steps": steps, "fid": s.fid, "fid_ci": s.fid_ci,
                           "kid": s.kid, "kid_ci": s.kid_ci, "wall_s": wall_s(result, time.perf_counter() - start),
                           "reference": method == "ddim" and steps == args.reference_steps})
            print(f"{row.name} {method} {steps}: FID {s.fid:.2f} {s.fid_ci}, KID {s.kid * 1e3:.2f}e-3", flush=True)
    return {"preset": args.preset, "data": args.data, "models": args.models, "n_samples": args.n_samples,
            "n_reference": args.n_reference, "budget_images": args.budget_images, "guidance": args.guidance,
            "reference_steps": args.reference_steps, "points": points, "choice": choose(points, args.methods)}


def wall_s(evaluation, measured: float) -> float | None:
    """The evaluation's own wall time (stored with it), else this call's when it computed the evaluation; None
    for a stored evaluation that predates timing (reading it back says nothing of its cost)."""
    if evaluation.seconds:
        return sum(evaluation.seconds.values())
    return measured if measured > 5.0 else None


def inside(value: float, ci) -> bool:
    return ci[0] <= value <= ci[1]


def choose(points: list[dict], methods) -> dict:
    """Per sampler, the fewest steps whose FID and KID lie inside the reference's intervals for every model."""
    refs = {p["model"]: p for p in points if p["reference"]}
    out = {}
    for method in methods:
        ok = sorted({p["steps"] for p in points if p["method"] == method and not p["reference"]})
        for steps in ok:
            rows = [p for p in points if p["method"] == method and p["steps"] == steps and not p["reference"]]
            if rows and all(inside(p["fid"], refs[p["model"]]["fid_ci"]) and inside(p["kid"], refs[p["model"]]["kid_ci"])
                            for p in rows):
                out[method] = steps
                break
        else:
            out[method] = None
    return out


def markdown(report: dict) -> str:
    lines = [f"# Sampling steps for evaluation ({report['preset']}, {report['data']})", "",
             f"{report['n_samples']} samples per point against {report['n_reference']} reference images; models trained "
             f"on {report['budget_images']} images (notebook 05's runs); guidance {report['guidance']}; the same prompts "
             f"and noise seeds at every point. Reference: DDIM with {report['reference_steps']} steps. 95% intervals "
             f"bootstrap the generated set." + (f" {report['notes']}" if report.get("notes") else ""),
             "Costs are not in this table (its points were computed beside other work, and a process's first point "
             "includes the alignment judge's training): `benchmarks/eval_cost.py` measures them.", "",
             "| model | sampler | steps | FID | 95% CI | KID ×10³ | 95% CI | in the reference's intervals |",
             "|---|---|---:|---:|---|---:|---|---|"]
    refs = {p["model"]: p for p in report["points"] if p["reference"]}
    for p in report["points"]:
        r = refs[p["model"]]
        within = "reference" if p["reference"] else (
            "yes" if inside(p["fid"], r["fid_ci"]) and inside(p["kid"], r["kid_ci"]) else "no")
        lines.append(f"| {p['model']} | {p['method']} | {p['steps']} | {p['fid']:.2f} | "
                     f"[{p['fid_ci'][0]:.2f}, {p['fid_ci'][1]:.2f}] | {p['kid'] * 1e3:.2f} | "
                     f"[{p['kid_ci'][0] * 1e3:.2f}, {p['kid_ci'][1] * 1e3:.2f}] | {within} |")
    lines += ["", "Chosen (fewest steps inside the reference's FID and KID intervals for every model): "
              + ", ".join(f"{m}: {s if s is not None else 'none of those tried'}" for m, s in report["choice"].items())]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(p["model"] for p in report["points"]))
    fig, axes = plt.subplots(2, len(models), figsize=(5 * len(models), 6.5), squeeze=False)
    for col, model in enumerate(models):
        pts = [p for p in report["points"] if p["model"] == model]
        ref = next(p for p in pts if p["reference"])
        for row, (key, scale, label) in enumerate((("fid", 1, "FID"), ("kid", 1e3, "KID ×10³"))):
            ax = axes[row, col]
            lo, hi = (v * scale for v in ref[f"{key}_ci"])
            ax.axhspan(lo, hi, color="grey", alpha=0.25, label=f"DDIM {ref['steps']} steps (95% CI)")
            for method, colour in (("ddim", "C0"), ("dpmpp_2m", "C1")):
                mp = sorted((p for p in pts if p["method"] == method and not p["reference"]), key=lambda p: p["steps"])
                if not mp:
                    continue
                x = [p["steps"] for p in mp]
                y = [p[key] * scale for p in mp]
                err = [[p[key] * scale - p[f"{key}_ci"][0] * scale for p in mp],
                       [p[f"{key}_ci"][1] * scale - p[key] * scale for p in mp]]
                ax.errorbar(x, y, yerr=err, fmt="o-", color=colour, capsize=3,
                            label="DPM-Solver++(2M)" if method == "dpmpp_2m" else "DDIM")
            ax.set_xscale("log")
            ax.set_xticks(sorted({p["steps"] for p in pts}))
            ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.set_xlabel("sampling steps (network calls)")
            ax.set_ylabel(label)
            ax.set_title(f"{model}: {label} vs steps")
            ax.legend(fontsize=8)
    fig.suptitle(f"{report['n_samples']} samples per point, same prompts and seeds; grey: the reference's interval")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu16")
    ap.add_argument("--models", nargs="+", default=["single64", "layered64"], help="Table 1 rows, e.g. single64")
    ap.add_argument("--data", default="emoji3d")
    ap.add_argument("--budget-images", type=int, default=12800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--n-samples", type=int, default=256)
    ap.add_argument("--n-reference", type=int, default=1000)
    ap.add_argument("--judge-steps", type=int, default=600)
    ap.add_argument("--n-boot", type=int, default=50)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--methods", nargs="+", default=["ddim", "dpmpp_2m"])
    ap.add_argument("--steps", nargs="+", type=int, default=[5, 10, 15, 25, 50])
    ap.add_argument("--reference-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "sampler-steps")
    args = ap.parse_args(argv)
    report = study(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    plot(report, args.out.with_suffix(".png"))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()

"""What one model's evaluation costs, before and after issue 16, measured in one process on one trained model:

- before: fp32 sampling, DDIM with 25 steps (the old profiles' default), the reference's Inception features
  computed for this evaluation (as every notebook and re-run used to);
- after: the precision the device picks (``precision="auto"``: bf16 on a CPU with native bf16), the chosen
  sampler and step count, the reference's features read back from the store (``stored_features``).

Both score the same prompts with the same noise seeds against the same reference (training images), so their
FID/KID can be compared; the alignment judge (a one-off per process) is left out of both. A third evaluation,
"after" sampled in fp32, separates the two changes that move the metric: the sampler (after fp32 - before) and
the precision (after - after fp32), each a paired difference on the same prompts and noise.

    .venv/bin/python benchmarks/eval_cost.py --run .cache/ldlib/runs/<run> [--n-samples 256] \
        [--method dpmpp_2m --steps 50] -> results/bench/eval-cost.json and .md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_name, save_report  # noqa: E402


def one(run: Path, reference, n_samples: int, method: str, steps: int, bf16: str | None, stored: bool,
        seed: int) -> dict:
    """One evaluation of ``run``; ``bf16`` forces the CPU probe ("0": fp32) or, None, leaves it to the CPU."""
    from ldlib.evaluation import metrics
    from ldlib.evaluation.evaluator import evaluate_model, stored_features
    from ldlib.data.text import make_encoder
    from ldlib.runtime.device import pick_device, resolve_precision
    from ldlib.training import load_model

    if bf16 is None:
        os.environ.pop("LDLIB_CPU_BF16", None)
    else:
        os.environ["LDLIB_CPU_BF16"] = bf16
    start = time.perf_counter()
    if stored:
        real = stored_features(reference.images, progress=False)
    else:
        real = metrics.extract(metrics.inception(), reference.images)
    ref_s = time.perf_counter() - start
    model, configs = load_model(run)
    precision = resolve_precision("auto", pick_device(None))
    ev = evaluate_model(model, configs["diffusion"], make_encoder("minilm"), reference, n_samples, steps=steps,
                        guidance=3.0, seed=seed, reference_features=real, method=method, label=run.name)
    s = ev.scores
    ev.reference = real
    seconds = {"reference features": ref_s, **ev.seconds}
    return ev, {"method": method, "steps": steps, "precision": precision, "reference": "stored" if stored else "computed",
            "seconds": seconds, "total_s": sum(seconds.values()), "s_per_image_sampling": ev.seconds["sampling"] / n_samples,
            "fid": s.fid, "fid_ci": s.fid_ci, "kid": s.kid, "kid_ci": s.kid_ci}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a finished run (or checkpoint) folder")
    ap.add_argument("--data", default="emoji3d")
    ap.add_argument("--n-samples", type=int, default=256)
    ap.add_argument("--n-reference", type=int, default=1000)
    ap.add_argument("--method", default="dpmpp_2m")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "eval-cost"))
    args = ap.parse_args(argv)

    from ldlib.data import data_spec
    from ldlib.evaluation.evaluator import reference_sets, stored_features
    from ldlib.training.checkpoint import read_configs, resolve_checkpoint

    run = Path(args.run)
    res = read_configs(resolve_checkpoint(run))["model"].resolutions[-1]
    reference = reference_sets(data_spec(args.data), [res], args.n_reference, "train")[res]
    forced = os.environ.get("LDLIB_CPU_BF16")  # the caller's choice for "after"
    stored_features(reference.images, progress=False)  # stored once, untimed: every later evaluation reads it
    ev_b, before = one(run, reference, args.n_samples, "ddim", 25, "0", False, args.seed)
    ev_a, after = one(run, reference, args.n_samples, args.method, args.steps, forced, True, args.seed)
    ev_f, after_fp32 = one(run, reference, args.n_samples, args.method, args.steps, "0", True, args.seed)
    from ldlib.evaluation import paired_difference

    pairs = {"after - before": (ev_a, ev_b), "sampler: after fp32 - before": (ev_f, ev_b),
             "precision: after - after fp32": (ev_a, ev_f)}
    differences = {name: {m: paired_difference([a], [b], m, seed=args.seed)[:2] for m in ("fid", "kid")}
                   for name, (a, b) in pairs.items()}
    report = {"run": run.name, "resolution": res, "n_samples": args.n_samples, "n_reference": len(reference),
              "cpu": cpu_name(), "before": before, "after": after, "after_fp32": after_fp32,
              "differences": differences}
    save_report(args.out, report, markdown(report))


def markdown(r: dict) -> str:
    b, a = r["before"], r["after"]
    parts = list(dict.fromkeys([*b["seconds"], *a["seconds"]]))
    lines = [f"# Evaluation cost of one model, before and after ({r['run']})", "",
             f"{r['n_samples']} samples at {r['resolution']} px against {r['n_reference']} training images; one "
             f"process on {r['cpu']}; the same prompts and noise seeds in both; alignment judge left out.", "",
             "| | before | after |", "|---|---|---|",
             f"| sampler | {b['method']} {b['steps']} steps, {b['precision']} | {a['method']} {a['steps']} steps, "
             f"{a['precision']} |",
             f"| reference features | {b['reference']} | {a['reference']} |"]
    for p in parts:
        lines.append(f"| {p} s | {b['seconds'].get(p, 0):.1f} | {a['seconds'].get(p, 0):.1f} |")
    lines += [f"| **total s** | **{b['total_s']:.1f}** | **{a['total_s']:.1f}** |",
              f"| sampling s/image | {b['s_per_image_sampling']:.3f} | {a['s_per_image_sampling']:.3f} |",
              f"| FID [95% CI] | {b['fid']:.2f} [{b['fid_ci'][0]:.2f}, {b['fid_ci'][1]:.2f}] | {a['fid']:.2f} "
              f"[{a['fid_ci'][0]:.2f}, {a['fid_ci'][1]:.2f}] |",
              f"| KID ×10³ [95% CI] | {b['kid'] * 1e3:.2f} [{b['kid_ci'][0] * 1e3:.2f}, {b['kid_ci'][1] * 1e3:.2f}] "
              f"| {a['kid'] * 1e3:.2f} [{a['kid_ci'][0] * 1e3:.2f}, {a['kid_ci'][1] * 1e3:.2f}] |",
              "", f"after / before wall time: {a['total_s'] / b['total_s']:.2f}"]
    if "after_fp32" in r:
        f = r["after_fp32"]
        lines += ["", f"The same \"after\" sampled in fp32: {f['total_s']:.1f} s, FID {f['fid']:.2f} "
                      f"[{f['fid_ci'][0]:.2f}, {f['fid_ci'][1]:.2f}], KID ×10³ {f['kid'] * 1e3:.2f}.", "",
                  "| paired difference (same prompts and noise) | FID [95% CI] | KID ×10³ [95% CI] |", "|---|---|---|"]
        for name, d in r["differences"].items():
            (fd, fc), (kd, kc) = d["fid"], d["kid"]
            lines.append(f"| {name} | {fd:+.2f} [{fc[0]:+.2f}, {fc[1]:+.2f}] | {kd * 1e3:+.2f} "
                         f"[{kc[0] * 1e3:+.2f}, {kc[1] * 1e3:+.2f}] |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

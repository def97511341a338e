"""What one paired FID difference costs, before and after ``metrics.ResampledFid``, measured in one process.

A claim's interval needs, per training seed, a paired bootstrap of FID over the generated samples
(``evaluation.paired_difference``, 200 resamples of both arms). Before, every resample computed FID from its
rows (an n x d x d product and an n x n eigenproblem, :func:`metrics.frechet_distance_to`); after, the Gram
matrix F S1 F^T (and the rows' squared norms) is computed once per generated set and each resample solves one eigenproblem the
size of its distinct rows (``ResampledFid.at``). Both paths see the same resample indices, so their intervals
must agree to rounding; the script checks that and reports the time of each and their ratio.

The inputs are synthetic features of Inception's size (d = 2048) against a 1,000-image reference: the cost
depends on the shapes only. BLAS runs on one thread (``OPENBLAS_NUM_THREADS=1`` set below), as in a process
that shares the machine; run it on an otherwise idle machine for absolute times.

    .venv/bin/python benchmarks/bootstrap_speed.py [--n 256 1000] [--n-boot 200] -> results/bench/bootstrap-speed.json and .md
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_name, save_report  # noqa: E402


class RowsOnly:
    """The statistic without its fast path: what every resample computed before."""

    def __init__(self, fid):
        self.fid = fid

    def __call__(self, rows):
        return self.fid(rows)


def measure(n: int, n_boot: int, d: int = 2048, seed: int = 0) -> dict:
    from ldlib.evaluation import metrics

    rng = np.random.default_rng(seed)
    real = rng.normal(size=(1000, d))
    a = rng.normal(size=(n, d)) * 1.1 + 0.05
    b = a + 0.3 * rng.normal(size=(n, d))  # the second arm, paired row by row
    out = {"n": n, "d": d, "n_boot": n_boot}
    for label, wrap in (("before", RowsOnly), ("after", lambda s: s)):
        stat = wrap(metrics.resampled_statistic("fid", real, n, seed))
        start = time.perf_counter()
        diff, ci, sd = metrics.paired_bootstrap(stat, a, b, n_boot, seed)
        out[label] = {"s": time.perf_counter() - start, "diff": diff, "ci": ci, "sd": sd}
    out["speed-up"] = out["before"]["s"] / out["after"]["s"]
    out["max relative difference of interval ends"] = max(
        abs(x - y) / abs(x) for x, y in zip(out["before"]["ci"], out["after"]["ci"]))
    return out


def markdown(rows: list[dict], cpu: str) -> str:
    lines = [f"# Paired FID bootstrap: rows vs Gram matrices ({cpu})", "",
             f"One paired difference, {rows[0]['n_boot']} resamples of both arms, d = {rows[0]['d']}, reference of "
             "1,000; one BLAS thread; both paths on the same resample indices (`benchmarks/bootstrap_speed.py`).", "",
             "| generated per arm | before s | after s | speed-up | largest relative gap between the two intervals |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']} | {r['before']['s']:.1f} | {r['after']['s']:.1f} | {r['speed-up']:.1f}x | "
                     f"{r['max relative difference of interval ends']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[256, 1000])
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "bootstrap-speed"))
    args = ap.parse_args()
    rows = []
    for n in args.n:
        rows.append(measure(n, args.n_boot))
        print(f"n={n}: before {rows[-1]['before']['s']:.1f} s, after {rows[-1]['after']['s']:.1f} s", flush=True)
    cpu = cpu_name()
    save_report(Path(args.out), {"cpu": cpu, "blas_threads": os.environ["OPENBLAS_NUM_THREADS"], "rows": rows},
                markdown(rows, cpu))


if __name__ == "__main__":
    main()

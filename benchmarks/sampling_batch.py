"""The sampling batch size, chosen by measurement (issue 16, item 3): seconds per generated image of each Table 1
model of a preset at several batch sizes, measured in one process on this machine, with the precision the device
picks and the profiles' sampler (classifier-free guidance included). Weights do not change the cost, so the
models are freshly initialised; one untimed batch warms each size up.

    .venv/bin/python benchmarks/sampling_batch.py [--preset cpu16] [--batches 8 16 32 64 128] [--steps 10]
        -> results/bench/sampling-batch.json and .md

The chosen size is the one with the lowest total time over the models (each model's time at a size relative to
its best, averaged), since one evaluation protocol samples every model with the same batches (batch ``j`` is
seeded ``seed + j``, so the batch size is part of the protocol).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_name, save_report  # noqa: E402


def seconds_per_image(model, diffusion, text, steps: int, method: str, repeat: int) -> float:
    from ldlib.sampler import sample

    sample(model, diffusion, text, steps=2, method=method)  # warm-up: allocator and kernels for this shape
    start = time.perf_counter()
    for r in range(repeat):
        sample(model, diffusion, text, steps=steps, method=method, seed=r)
    return (time.perf_counter() - start) / (repeat * len(text))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu16")
    ap.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--steps", type=int, default=10, help="sampling steps per timed call (cost is linear in them)")
    ap.add_argument("--method", default="dpmpp_2m")
    ap.add_argument("--min-images", type=int, default=128, help="images timed per point, at least one batch")
    ap.add_argument("--out", default=str(ROOT / "results" / "bench" / "sampling-batch"))
    args = ap.parse_args(argv)

    import torch

    from ldlib.config import DiffusionConfig
    from ldlib.data.text import make_encoder
    from ldlib.flops import table1_models
    from ldlib.network import build_model
    from ldlib.runtime.device import pick_device, place, resolve_precision

    dev = pick_device(None)
    precision = resolve_precision("auto", dev)
    encoder = make_encoder("minilm")
    rows = {}
    for name, cfg in table1_models(args.preset).items():
        torch.manual_seed(0)
        model = place(build_model(cfg), dev, precision).eval()
        diffusion = DiffusionConfig.paper(cfg.resolutions)
        rows[name] = {}
        for b in args.batches:
            text = encoder.encode([f"a picture number {i}" for i in range(b)])
            repeat = max(1, -(-args.min_images // b))
            rows[name][b] = seconds_per_image(model, diffusion, text, args.steps, args.method, repeat) / args.steps
            print(f"{name} batch {b}: {rows[name][b] * 1e3:.2f} ms per image per step", flush=True)
    relative = {b: sum(rows[m][b] / min(rows[m].values()) for m in rows) / len(rows) for b in args.batches}
    chosen = min(relative, key=relative.get)
    report = {"preset": args.preset, "device": str(dev), "precision": precision, "method": args.method,
              "steps_timed": args.steps, "cpu": cpu_name(), "s_per_image_step": rows, "relative": relative,
              "chosen": chosen}
    save_report(args.out, report, markdown(report))


def markdown(r: dict) -> str:
    batches = list(r["relative"])
    lines = [f"# Sampling batch size ({r['preset']}, {r['method']}, {r['precision']} on {r['cpu']})", "",
             "Milliseconds per image per sampling step (guidance's two passes included); one process, fresh "
             "weights, one untimed warm-up batch per size.", "",
             "| model | " + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for name, row in r["s_per_image_step"].items():
        row = {int(b): v for b, v in row.items()}  # JSON turns the keys into strings
        cells = [f"{row[b] * 1e3:.2f}" for b in batches]
        cells = [f"**{c}**" if row[b] == min(row.values()) else c for c, b in zip(cells, batches)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| time relative to each model's best, mean | "
                 + " | ".join(f"{r['relative'][b]:.3f}" for b in batches) + " |")
    lines += ["", f"Chosen: **batch {r['chosen']}** (lowest mean relative time)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

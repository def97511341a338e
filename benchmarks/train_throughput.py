"""Training throughput of layered vs single-resolution models at the same target resolution.

Measured in one run on the current machine (never compare numbers from different runs or machines):

    .venv/bin/python benchmarks/train_throughput.py [--presets cpu16 cpu32] [--steps 20] [--batch-size 16]

For each preset and target resolution (2x and 4x the base) it trains the layered model and the
single-resolution U-Net with the same widths on the same data for a few steps (after warm-up), and prints
images/s, forward FLOPs per image, and the layered/single ratios. Results go to results/bench/<host>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldlib.config import DiffusionConfig, TrainConfig, model_config  # noqa: E402
from ldlib.data import shapes_dataset  # noqa: E402
from ldlib.device import pick_device, resolve_precision  # noqa: E402
from ldlib.flops import count_flops  # noqa: E402
from ldlib.text import HashTextEncoder, encode_unique  # noqa: E402
from ldlib.train import train  # noqa: E402


def measure(mcfg, steps: int, batch: int, data, text, index, precision: str) -> float:
    dcfg = DiffusionConfig.paper(mcfg.resolutions)
    tcfg = TrainConfig(steps=steps + 2, batch_size=batch, warmup_steps=1, checkpoint_every=10**9,
                       text_encoder="hash", precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(mcfg, dcfg, tcfg, data, text, index, Path(tmp) / "run", progress=False)
    return result.images_per_s  # excludes the first (warm-up) step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["cpu16", "cpu32"])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "results" / "bench")
    args = ap.parse_args()

    device = pick_device()
    precision = resolve_precision(args.precision, device)
    rows = []
    for preset in args.presets:
        for levels in (2, 3):
            layered = model_config(preset, levels)
            single = model_config(preset, levels, single=True)
            top = layered.resolutions[-1]
            data = shapes_dataset(256, top, seed=0)
            text, index = encode_unique(HashTextEncoder(), data.captions)
            ips = {name: measure(cfg, args.steps, args.batch_size, data, text, index, precision)
                   for name, cfg in (("single", single), ("layered", layered))}
            flops = {name: count_flops(cfg) for name, cfg in (("single", single), ("layered", layered))}
            row = {"preset": preset, "target": top, "levels": levels, "images_per_s": ips, "flops": flops,
                   "speed_ratio_layered_over_single": ips["layered"] / ips["single"],
                   "flops_ratio_layered_over_single": flops["layered"] / flops["single"]}
            rows.append(row)
            print(f"{preset:6s} target {top:4d}px  single {ips['single']:7.1f} img/s  layered {ips['layered']:7.1f} img/s  "
                  f"speed x{row['speed_ratio_layered_over_single']:.3f}  FLOPs ratio {row['flops_ratio_layered_over_single']:.3f}",
                  flush=True)
    meta = {"host": socket.gethostname(), "platform": platform.platform(), "device": str(device),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "precision": precision, "batch_size": args.batch_size, "steps": args.steps, "torch": torch.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cuda" if device.type == "cuda" else "cpu"
    path = args.out / f"train_throughput-{name}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

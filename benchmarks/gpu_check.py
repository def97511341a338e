"""The GPU acceptance run: the ``paper`` preset's Table 1 models trained and sampled on one GPU, measured in one
run against that run's own bf16 matmul ceiling. ``benchmarks/gpu_check.sh`` installs what is missing and
calls this after the GPU-marked tests; ``--cpu-dry-run`` runs the same steps on the ``smoke`` preset on the
CPU (what CI checks).

    python benchmarks/gpu_check.py [--out results/bench] [--steps 10] [--no-compile]
    python benchmarks/gpu_check.py --cpu-dry-run --out /tmp/check

For each of Table 1's two largest models (``single`` and ``layered`` at the preset's top resolution), with and
without ``torch.compile``: training images/s in bf16 autocast at a batch that ``ldlib.training.memory`` says
fits (with activation checkpointing where it says the batch does not fit without), model FLOPs utilisation
(images/s x 3 x forward FLOPs over the bf16 matmul FLOP/s measured in this run; recomputation is not counted),
peak allocated memory against the estimate, and sampling seconds per image (DDIM and DPM-Solver++(2M),
classifier-free guidance). Writes ``<out>/<device name>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ldlib.config import DiffusionConfig, TrainConfig  # noqa: E402
from ldlib.data import HashTextEncoder, encode_unique, shapes_dataset  # noqa: E402
from ldlib.flops import count_flops, table1_models  # noqa: E402
from ldlib.network import build_model  # noqa: E402
from ldlib.runtime.device import Execution, place, resolve_precision  # noqa: E402
from ldlib.sampler import sample  # noqa: E402
from ldlib.training import train  # noqa: E402
from ldlib.training.memory import max_batch, training_memory  # noqa: E402

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def matmul_ceiling(dev: torch.device, dtype: torch.dtype, n: int, repeat: int = 10) -> float:
    """Dense matmul FLOP/s of this device in ``dtype`` (the MFU denominator)."""
    a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(dev)
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    sync(dev)
    return 2 * n**3 * repeat / (time.perf_counter() - start)


def plan_batch(cfg, batch: int, budget_bytes: float, precision: str) -> tuple[int, bool]:
    """The batch to train at and whether activation checkpointing is needed for it (``ldlib.training.memory``)."""
    if max_batch(cfg, budget_bytes, precision, checkpoint_activations=False) >= batch:
        return batch, False
    fits = max_batch(cfg, budget_bytes, precision, checkpoint_activations=True)
    if fits < 1:
        raise RuntimeError(f"not even one image of {cfg.resolutions} fits in {budget_bytes / 2**30:.0f} GiB")
    return min(batch, fits), True


def train_row(name: str, cfg, dev: torch.device, precision: str, batch: int, checkpoint: bool, compile_: bool,
              steps: int, data, text, index) -> dict:
    mcfg_flops = count_flops(cfg)
    dcfg = DiffusionConfig.paper(cfg.resolutions)
    tcfg = TrainConfig(steps=steps + 1, batch_size=batch, warmup_steps=1, checkpoint_every=10**9, text_encoder="hash",
                       precision=precision)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    execution = Execution(compile=compile_, checkpoint_activations=checkpoint)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, dcfg, tcfg, data, text, index, Path(tmp) / "run", device=str(dev), progress=False,
                       execution=execution)
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else None
    estimate = training_memory(cfg, batch, precision, checkpoint).total_bytes
    row = {"model": name, "resolutions": list(cfg.resolutions), "batch": batch, "precision": precision,
           "checkpoint_activations": checkpoint, "compile": compile_, "steps_timed": steps,
           "images_per_s": result.images_per_s, "wall_s": wall, "forward_flops_per_image": mcfg_flops,
           "peak_allocated_gib": None if peak is None else peak / 2**30, "estimate_gib": estimate / 2**30,
           "final_loss": result.losses[-1]}
    measured = "n/a on the CPU" if peak is None else f"{peak / 2**30:.1f} GiB"
    log(f"train {name} batch {batch} ckpt={checkpoint} compile={compile_}: {result.images_per_s:.2f} images/s, "
        f"peak {measured} (estimate {row['estimate_gib']:.2f} GiB), {wall:.0f} s")
    return row


@torch.no_grad()
def sample_row(name: str, cfg, dev: torch.device, batch: int, steps: int, method: str) -> dict:
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    place(model, dev, resolve_precision("auto", dev))
    text = HashTextEncoder(dim=cfg.text_dim).encode([f"a red circle {i}" for i in range(batch)])
    diff = DiffusionConfig.paper(cfg.resolutions)
    sample(model, diff, text, steps=2, guidance=3.0, method=method)  # warm-up
    sync(dev)
    start = time.perf_counter()
    sample(model, diff, text, steps=steps, guidance=3.0, method=method)
    sync(dev)
    s = (time.perf_counter() - start) / batch
    log(f"sample {name} {method} {steps} steps: {s:.3f} s/image")
    return {"model": name, "method": method, "steps": steps, "batch": batch, "guidance": 3.0, "s_per_image": s}


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(dev).lower()).strip("-")
    return "cpu-dry-run"


def markdown(report: dict) -> str:
    c = report["ceiling"]
    lines = [f"# GPU acceptance run: {report['device']}", "",
             f"torch {report['torch']}, preset `{report['preset']}`; bf16 matmul ceiling "
             f"{c['bf16_tflops']:.3g} TFLOP/s, fp32 {c['fp32_tflops']:.3g} TFLOP/s (this run); total "
             f"{report['wall_s']:.0f} s" + ("." if report["complete"] else " (cut short: the rows measured before)."),
             "",
             "| model | batch | act. ckpt | compile | images/s | MFU (bf16) | peak GiB | estimate GiB |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    for r in report["train"]:
        peak = "—" if r["peak_allocated_gib"] is None else f"{r['peak_allocated_gib']:.1f}"
        lines.append(f"| {r['model']} | {r['batch']} | {r['checkpoint_activations']} | {r['compile']} | "
                     f"{r['images_per_s']:.2f} | {r['mfu']:.3f} | {peak} | {r['estimate_gib']:.1f} |")
    lines += ["", "| model | sampler | steps | s / image (guidance 3, batch) |", "|---|---|---:|---:|"]
    for r in report["sample"]:
        lines.append(f"| {r['model']} | {r['method']} | {r['steps']} | {r['s_per_image']:.3f} ({r['batch']}) |")
    return "\n".join(lines) + "\n"


def save(report: dict, stem: Path) -> None:
    """Write ``<stem>.json`` and ``.md`` with the rows measured so far."""
    report["wall_s"] = time.perf_counter() - T0
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1))
    stem.with_suffix(".md").write_text(markdown(report))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-dry-run", action="store_true", help="the same steps on the smoke preset on the CPU")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per row")
    ap.add_argument("--batch", type=int, default=16, help="training batch, lowered to what fits")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    args = ap.parse_args(argv)
    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU, or pass --cpu-dry-run")
    dev = torch.device("cpu" if dry else "cuda")
    preset, precision = ("smoke", resolve_precision("auto", dev)) if dry else ("paper", "bf16")
    steps, batch = (2, 4) if dry else (args.steps, args.batch)
    budget = (torch.cuda.get_device_properties(dev).total_memory if dev.type == "cuda" else 8 * 2**30) * 0.8
    log(f"device {device_name(dev)}, preset {preset}, precision {precision}")
    n = 256 if dry else 8192
    ceiling = {"bf16_tflops": matmul_ceiling(dev, torch.bfloat16, n) / 1e12,
               "fp32_tflops": matmul_ceiling(dev, torch.float32, n) / 1e12}
    log(f"matmul ceiling: bf16 {ceiling['bf16_tflops']:.3g} TFLOP/s, fp32 {ceiling['fp32_tflops']:.3g} TFLOP/s")
    # Table 1's last two rows (the paper's 512 px pair), named by kind and this preset's target resolution
    models = dict(list(table1_models(preset).items())[-2:])
    top = next(iter(models.values())).resolutions[-1]
    data = shapes_dataset(64, top, seed=0)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    report = {"device": device_name(dev), "torch": torch.__version__, "preset": preset, "ceiling": ceiling,
              "train": [], "sample": [], "complete": False}
    stem = args.out / report["device"]
    plans = {name: plan_batch(cfg, batch, budget, precision) for name, cfg in models.items()}

    def train_rows(compile_: bool) -> None:
        for name, cfg in models.items():
            row = train_row(name, cfg, dev, precision, *plans[name], compile_, steps, data, text, index)
            row["mfu"] = row["images_per_s"] * 3 * row["forward_flops_per_image"] / (ceiling["bf16_tflops"] * 1e12)
            report["train"].append(row)
            save(report, stem)

    # eager training and sampling first, compiled training last: a run cut short by a time limit still leaves
    # the rows it finished on disk (save() after each one, "complete": false until the end)
    train_rows(False)
    for name, cfg in models.items():
        for method in ("ddim", "dpmpp_2m"):
            report["sample"].append(sample_row(name, cfg, dev, 4 if dry else 16, 3 if dry else 25, method))
            save(report, stem)
    if not args.no_compile:
        train_rows(True)
    report["complete"] = True
    save(report, stem)
    log(f"wrote {stem}.json and {stem}.md")
    return report


if __name__ == "__main__":
    main()

"""Which precision and memory layout train and sample fastest on this CPU: an interleaved A/B in one process
(each arm timed in turn, best of ``--reps`` after one warm-up round), so that the arms see the same machine.

    .venv/bin/python benchmarks/precision_layout.py [--preset cpu16] [--levels 3]   # -> results/bench/<cpu>-precision-layout.md

Arms: fp32 and bf16 autocast, each in channels_last and in the default (contiguous) layout; a training step
(forward, eq. 3 loss, backward, AdamW) at batch 32 and sampling (10 DDIM steps with guidance, reported per
image at 50 steps) at batch 8, for the single-resolution and the layered model at the preset's top resolution.
``ldlib.runtime.device`` chooses by what this measures; on a CPU without native bf16, bf16 runs emulated and slow.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_name  # noqa: E402

from ldlib.config import DiffusionConfig, model_config  # noqa: E402
from ldlib.data import HashTextEncoder  # noqa: E402
from ldlib.network import build_model  # noqa: E402
from ldlib.runtime.device import cpu_has_native_bf16  # noqa: E402
from ldlib.sampler import sample  # noqa: E402
from ldlib.training import step_loss  # noqa: E402

ARMS = (("fp32", torch.channels_last), ("fp32", torch.contiguous_format), ("bf16", torch.contiguous_format),
        ("bf16", torch.channels_last))
CPU = torch.device("cpu")


def layout_name(layout) -> str:
    return "channels_last" if layout == torch.channels_last else "contiguous"


def interleaved(arms: dict, run, reps: int) -> dict:
    times = {k: [] for k in arms}
    for rep in range(reps + 1):  # round 0 warms up
        for key, arm in arms.items():
            start = time.perf_counter()
            run(key, arm)
            if rep:
                times[key].append(time.perf_counter() - start)
    return {k: min(v) for k, v in times.items()}


def training(cfg, reps: int, batch: int = 32) -> dict:
    diff = DiffusionConfig.paper(cfg.resolutions)
    text = HashTextEncoder(dim=cfg.text_dim).encode([f"caption {i}" for i in range(batch)])
    top = cfg.resolutions[-1]
    x0 = torch.rand(batch, 3, top, top, generator=torch.Generator().manual_seed(0)) * 2 - 1
    arms = {}
    for precision, layout in ARMS:
        torch.manual_seed(0)
        model = build_model(cfg).train().to(memory_format=layout)
        arms[(precision, layout_name(layout))] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4), layout)

    def step(key, arm):
        model, opt, layout = arm
        loss, _ = step_loss(model, x0, torch.randn_like(x0), torch.rand(batch), text, None, None, diff, CPU, key[0], layout)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {k: batch / s for k, s in interleaved(arms, step, reps).items()}  # images/s


def sampling(cfg, reps: int, batch: int = 8, steps: int = 10) -> dict:
    diff = DiffusionConfig.paper(cfg.resolutions)
    text = HashTextEncoder(dim=cfg.text_dim).encode([f"caption {i}" for i in range(batch)])
    torch.manual_seed(0)
    base = build_model(cfg).eval()
    arms = {}
    for precision, layout in ARMS:
        model = build_model(cfg).eval()
        model.load_state_dict(base.state_dict())
        arms[(precision, layout_name(layout))] = model.to(memory_format=layout)
    run = lambda key, model: sample(model, diff, text, steps=steps, guidance=3.0, precision=key[0])  # noqa: E731
    return {k: s / batch * 50 / steps for k, s in interleaved(arms, run, reps).items()}  # s/image at 50 steps


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu16")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    args = ap.parse_args(argv)
    flags = "native bf16 (AVX-512 BF16 or AMX)" if cpu_has_native_bf16() else "no native bf16"
    lines = [f"# Precision and memory layout on {cpu_name()}", "",
             f"{flags}; {torch.get_num_threads()} threads; torch {torch.__version__}; `{args.preset}`, "
             f"{args.levels} resolutions; interleaved in one process, best of {args.reps} after a warm-up round "
             f"(`python benchmarks/precision_layout.py`).", "",
             "| model | precision | layout | training images/s (batch 32) | x fp32 channels_last | "
             "sampling s/image (50 steps, guidance 3) | x fp32 channels_last |", "|---|---|---|---:|---:|---:|---:|"]
    for single in (True, False):
        cfg = model_config(args.preset, args.levels, single=single)
        name = f"{'single' if single else 'layered'}{cfg.resolutions[-1]}"
        train, samp = training(cfg, args.reps), sampling(cfg, args.reps)
        ref = ("fp32", "channels_last")
        for key in train:
            lines.append(f"| {name} | {key[0]} | {key[1]} | {train[key]:.1f} | {train[key] / train[ref]:.2f} | "
                         f"{samp[key]:.3f} | {samp[ref] / samp[key]:.2f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_name().lower()).strip("-")[:40]
    (args.out / f"{slug}-precision-layout.md").write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()

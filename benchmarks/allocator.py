"""What keeping freed memory in the heap (``ldlib.runtime.allocator``) changes on this CPU: training steps and
sampling of the `cpu16` Table 1 models at the top resolution, fp32 (what the `default` campaign pins), each part
(training, sampling) of each arm in a fresh process (glibc's settings hold for a process's life, and an evaluation
samples in a process that has not trained), arms alternating round by round so that both see the same machine;
the ratio is taken per round and its median reported.

    .venv/bin/python benchmarks/allocator.py [--rounds 3] [--preset cpu16]   # -> results/bench/allocator.json, .md

Per process: the model freshly initialised (weights do not change the cost); training: two untimed steps, then
``--steps`` timed ones (batch 32, forward, eq. 3 loss, backward, AdamW); sampling: one untimed call, then one of
``--sample-steps`` steps (batch 32, DPM++ 2M with guidance 3, the evaluation's sampler and batch). Page faults
and system time come from ``getrusage`` over the timed part.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_name, save_report  # noqa: E402

ARMS = ("glibc default", "kept (ldlib)")
PARTS = ("train", "sample")


def _usage() -> tuple[float, int, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_minflt, r.ru_stime


def _timed(run, count: int) -> dict:
    t0, f0, s0 = _usage()
    for _ in range(count):
        run()
    t1, f1, s1 = _usage()
    return {"s": (t1 - t0) / count, "faults": (f1 - f0) / count, "system_share": (s1 - s0) / (t1 - t0) / os.cpu_count()}


def worker(arm: str, single: bool, part: str, preset: str, steps: int) -> dict:
    """One arm, one model, one part ("train" or "sample"), in this process."""
    if arm == ARMS[1]:
        from ldlib.runtime.allocator import keep_freed_memory

        assert keep_freed_memory(), "glibc did not take the settings"
    import torch

    from ldlib.config import DiffusionConfig, model_config
    from ldlib.data import HashTextEncoder
    from ldlib.network import build_model
    from ldlib.sampler import sample
    from ldlib.training import step_loss

    cfg, batch = model_config(preset, 3, single=single), 32
    diff = DiffusionConfig.paper(cfg.resolutions)
    text = HashTextEncoder(dim=cfg.text_dim).encode([f"caption {i}" for i in range(batch)])
    top, cpu, layout = cfg.resolutions[-1], torch.device("cpu"), torch.channels_last
    torch.manual_seed(0)
    model = build_model(cfg).to(memory_format=layout)
    if part == "sample":
        model.eval()
        draw = lambda n: sample(model, diff, text, steps=n, guidance=3.0, method="dpmpp_2m", precision="fp32")  # noqa: E731
        draw(2)  # untimed
        run = lambda: draw(steps)  # noqa: E731
        cost, per = _timed(run, 1), steps
    else:
        x0 = torch.rand(batch, 3, top, top, generator=torch.Generator().manual_seed(0)) * 2 - 1
        opt = torch.optim.AdamW(model.train().parameters(), lr=1e-4)

        def run():
            loss, _ = step_loss(model, x0, torch.randn_like(x0), torch.rand(batch), text, None, None, diff, cpu,
                                "fp32", layout)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        run(), run()
        cost, per = _timed(run, steps), 1
    return {"images_per_s": batch * per / cost["s"], "faults_per_step": cost["faults"] / per,
            "system_share": cost["system_share"],
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _spawn(arm: str, single: bool, part: str, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}  # the default arm starts untouched
    cmd = [sys.executable, __file__, "--worker", arm, "--model", "single" if single else "layered",
           "--part", part, "--preset", args.preset,
           "--steps", str(args.steps if part == "train" else args.sample_steps)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _table(results: dict, args) -> str:
    lines = [f"# Keeping freed memory in the heap on {cpu_name()}", "",
             f"`{args.preset}` at the top resolution, fp32, {os.cpu_count()} CPUs, batch 32; training: {args.steps} "
             f"steps after 2 untimed; sampling: one call of {args.sample_steps} DPM++ 2M steps with guidance 3 after "
             f"an untimed one (images/s counts image-steps); {args.rounds} rounds, arms alternating, each part of "
             "each arm in a fresh process; medians over rounds; speed-up: the median over rounds of the round's "
             "ratio (`python benchmarks/allocator.py`).", "",
             "| model | part | arm | images/s | page faults / step | system time share | peak RSS (MB) |",
             "|---|---|---|---:|---:|---:|---:|"]
    for (name, part), per_arm in results.items():
        for arm in ARMS:
            m = {k: statistics.median(r[k] for r in per_arm[arm]) for k in per_arm[arm][0]}
            lines.append(f"| {name} | {part} | {arm} | {m['images_per_s']:.1f} | {m['faults_per_step']:,.0f} | "
                         f"{m['system_share']:.0%} | {m['max_rss_mb']:,.0f} |")
    lines += ["", "| model | part | speed-up (kept / default) | rounds' ratios |", "|---|---|---:|---|"]
    for (name, part), per_arm in results.items():
        ratios = [k["images_per_s"] / d["images_per_s"] for d, k in zip(per_arm[ARMS[0]], per_arm[ARMS[1]])]
        lines.append(f"| {name} | {part} | {statistics.median(ratios):.3f} | {', '.join(f'{x:.3f}' for x in ratios)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--sample-steps", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "allocator")
    ap.add_argument("--worker", choices=ARMS, help=argparse.SUPPRESS)
    ap.add_argument("--model", choices=("single", "layered"), help=argparse.SUPPRESS)
    ap.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.model == "single", args.part, args.preset, args.steps)))
        return
    from ldlib.config import model_config

    results = {}
    for single in (True, False):
        name = f"{'single' if single else 'layered'}{model_config(args.preset, 3, single=single).resolutions[-1]}"
        for part in PARTS:
            results[name, part] = {arm: [] for arm in ARMS}
            for r in range(args.rounds):
                for arm in ARMS if r % 2 == 0 else ARMS[::-1]:  # neither arm always runs first
                    results[name, part][arm].append(_spawn(arm, single, part, args))
                    print(name, part, arm, r, results[name, part][arm][-1], flush=True)
    hidden = ("out", "worker", "model", "part")
    report = {"cpu": cpu_name(), "args": {k: v for k, v in vars(args).items() if k not in hidden},
              "results": [{"model": n, "part": p, "arms": v} for (n, p), v in results.items()]}
    save_report(args.out, report, _table(results, args))


if __name__ == "__main__":
    main()

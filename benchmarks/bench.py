"""Speed and memory of training and sampling, layered vs single-resolution, against the machine's own ceiling.

Everything is measured in one run on the current machine; compare numbers only within one run (or two runs
made back to back on an otherwise idle machine, as for the before/after table):

    .venv/bin/python benchmarks/bench.py                      # -> results/bench/<device>.json and .md
    .venv/bin/python benchmarks/bench.py --ablate             # + one row per speed choice in ldlib.runtime.device
    .venv/bin/python benchmarks/bench.py --code ../old --label before   # another checkout's ldlib, same harness
    .venv/bin/python benchmarks/bench.py --compare results/bench/cpu-before.json   # adds a before/after table

What it measures (each in its own subprocess, so peak memory is that measurement's alone):

* ceiling: dense matmul and 3x3 convolution FLOP/s in fp32 (the dtype the CPU trains in) and bf16;
* training images/s and peak memory of single vs layered at 2x and 4x the base resolution of each preset
  (``cpu16``, ``cpu32``; ``paper`` on CUDA), with the layered/single ratio beside Table 1's FLOPs ratio, and
  model FLOPs utilisation: images/s x 3 x forward FLOPs per image (forward + backward ~ 3 forwards) over
  the measured convolution ceiling;
* the layered model with strategic cropping (section 3.1) at the crop size the notebooks use;
* sampling: seconds per image at the target resolution, 50 DDIM steps with classifier-free guidance;
* memory of a ``default``-profile training run (``ldlib train``, cpu16, 3 resolutions, batch 32, MiniLM);
* training memory measured vs ``ldlib.training.memory``'s estimate, and that estimate for the ``paper`` preset on one
  GPU (this one, or 80 GB when run on a CPU), without and with activation checkpointing.

Training uses ``ldlib.training.train`` and sampling ``ldlib.training.load_model`` + ``ldlib.sampler.sample``: the
library's own paths, so ``--code`` measures what another version of the library does with the same harness.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAPER_FLOPS_RATIO = {2: 0.927, 3: 0.861}  # Table 1: layered/single GFLOPs at 256 px (2 res.) and 512 px (3 res.)


# ------------------------------------------------------------------------------------------- workers


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cuda_peak_mib(torch) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def _time(fn, flops: float, repeat: int, sync) -> float:
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return flops * repeat / (time.perf_counter() - start) / 1e9


def work_ceiling(spec: dict) -> dict:
    import torch
    import torch.nn.functional as F

    dev = torch.device(spec["device"])
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    out = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        slow = dev.type == "cpu" and dtype == torch.bfloat16 and not spec["native_bf16"]
        n = 8192 if dev.type == "cuda" else 256 if slow else 2048
        a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
        out[f"matmul_{name}_gflops"] = _time(lambda: a @ b, 2 * n**3, 1 if slow else 10, sync)
        bsz, ch, side = (8, 32, 16) if slow else (32, 64, 32)
        x = torch.randn(bsz, ch, side, side, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(ch, ch, 3, 3, device=dev, dtype=dtype).contiguous(memory_format=torch.channels_last)
        out[f"conv3x3_{name}_gflops"] = _time(lambda: F.conv2d(x, w, padding=1), 2 * bsz * ch * ch * 9 * side**2,
                                              1 if slow else 10, sync)
    return out


def _shapes_and_text(top: int, n: int = 256):
    from ldlib.data import shapes_dataset
    from ldlib.data.text import HashTextEncoder, encode_unique

    data = shapes_dataset(n, top, seed=0)
    text, index = encode_unique(HashTextEncoder(), data.captions)
    return data, text, index


def _configs(spec: dict, steps: int, checkpoint_every: int):
    from ldlib.config import DiffusionConfig, TrainConfig, model_config

    mcfg = model_config(spec["preset"], spec["levels"], single=spec["single"])
    dcfg = DiffusionConfig.paper(mcfg.resolutions)
    tcfg = TrainConfig(steps=steps, batch_size=spec["batch"], warmup_steps=1, checkpoint_every=checkpoint_every,
                       text_encoder="hash", crop_size=spec.get("crop") or None)
    return mcfg, dcfg, tcfg


def _execution_kwargs(spec: dict) -> dict:
    """Only the current library knows ``execution``; the default is not passed, so older versions run too."""
    if not spec.get("execution"):
        return {}
    from ldlib.runtime.device import Execution

    return {"execution": Execution(**spec["execution"])}


def work_train(spec: dict) -> dict:
    import torch

    from ldlib.training.train import train

    mcfg, dcfg, tcfg = _configs(spec, spec["steps"] + 1, 10**9)  # + 1: train() excludes its first step
    data, text, index = _shapes_and_text(mcfg.resolutions[-1])
    base = _rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train(mcfg, dcfg, tcfg, data, text, index, Path(tmp) / "run", device=spec["device"], progress=False,
                       **_execution_kwargs(spec))
        wall = time.perf_counter() - start
    return {"images_per_s": result.images_per_s, "wall_s": wall, "peak_rss_mib": _rss_mib(), "base_rss_mib": base,
            "cuda_peak_mib": _cuda_peak_mib(torch)}


def _loaded_model(spec: dict):
    """A model as evaluation gets it: trained one step, saved, and loaded back with ``load_model``."""
    from ldlib.training import load_model, train

    mcfg, dcfg, tcfg = _configs(dict(spec, batch=2), 1, 1)
    data, text, index = _shapes_and_text(mcfg.resolutions[-1], n=8)
    with tempfile.TemporaryDirectory() as tmp:
        run = train(mcfg, dcfg, tcfg, data, text, index, Path(tmp) / "run", device=spec["device"], progress=False)
        return load_model(run.checkpoint, device=spec["device"])


def work_sample(spec: dict) -> dict:
    import torch

    from ldlib.data.text import HashTextEncoder
    from ldlib.sampler import sample

    model, configs = _loaded_model(spec)
    if spec.get("layout") == "contiguous":
        model = model.to(memory_format=torch.contiguous_format)
    prompts = HashTextEncoder().encode([f"a red circle {i}" for i in range(spec["batch"])])
    sample(model, configs["diffusion"], prompts, steps=2, guidance=3.0)  # warm-up
    start = time.perf_counter()
    sample(model, configs["diffusion"], prompts, steps=spec["steps"], guidance=3.0)
    seconds = time.perf_counter() - start
    return {"s_per_image_50_steps": seconds / spec["batch"] * 50 / spec["steps"], "steps_timed": spec["steps"],
            "peak_rss_mib": _rss_mib(), "cuda_peak_mib": _cuda_peak_mib(torch)}


def work_default_run(spec: dict) -> dict:
    """Peak memory of ``ldlib train`` as the default profile runs it (emoji3d if fetched, else shapes)."""
    out = {}
    for data in ("emoji3d", "shapes"):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "ldlib.cli", "train", "--preset", "cpu16", "--levels", "3", "--data", data,
                   "--steps", str(spec["steps"]), "--batch-size", "32", "--lr", "5e-4", "--text-encoder", "minilm",
                   "--checkpoint-every", str(spec["steps"]), "--out", str(Path(tmp) / "run"), "--quiet"]
            start = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            out = {"data": data, "steps": spec["steps"], "wall_s": time.perf_counter() - start,
                   "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                   "returncode": proc.returncode}
        if proc.returncode == 0:
            return out
    out["error"] = proc.stderr[-2000:]
    return out


def work_sample_layouts(spec: dict) -> dict:
    """Sampling in channels_last against contiguous in one process, interleaved: the separate-process ablation
    row is at the mercy of run-to-run noise (+-15% here), this A/B is not."""
    import torch

    from ldlib.data.text import HashTextEncoder
    from ldlib.sampler import sample

    model, configs = _loaded_model(spec)
    prompts = HashTextEncoder().encode([f"a red circle {i}" for i in range(spec["batch"])])
    seconds = {"channels_last": [], "contiguous": []}
    for _ in range(spec["reps"]):
        for layout, fmt in (("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format)):
            model = model.to(memory_format=fmt)
            sample(model, configs["diffusion"], prompts, steps=2, guidance=3.0)  # warm-up in this layout
            start = time.perf_counter()
            sample(model, configs["diffusion"], prompts, steps=spec["steps"], guidance=3.0)
            seconds[layout].append(time.perf_counter() - start)
    med = _medians(seconds)
    return {"seconds": seconds, "speedup": med["contiguous"] / med["channels_last"]}


def _medians(seconds: dict[str, list[float]]) -> dict[str, float]:
    """The upper median of each list (an observed time, not an average of two)."""
    return {k: sorted(v)[len(v) // 2] for k, v in seconds.items()}


WORKERS = {"ceiling": work_ceiling, "train": work_train, "sample": work_sample, "sample_layouts": work_sample_layouts,
           "default_run": work_default_run}


# -------------------------------------------------------------------------------------- orchestration


def run_worker(spec: dict, code: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)], env=env,
                          capture_output=True, text=True, cwd=str(code))
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def plan(presets: list[str], device: str, quick: bool, ablate: bool) -> list[dict]:
    from ldlib.reproduction.strategic_cropping import default_crop_size

    train_batch = {"smoke": 8, "cpu16": 32, "cpu32": 16, "paper": 16}
    train_steps = {"smoke": 3, "cpu16": 8, "cpu32": 5, "paper": 20}
    sample_batch = {"smoke": 4, "cpu16": 8, "cpu32": 4, "paper": 16}
    jobs = [{"kind": "ceiling"}]
    for preset in presets:
        # a GPU runs the small presets' steps in milliseconds: time more of them
        steps = 2 if quick else train_steps[preset] * (5 if device == "cuda" and preset != "paper" else 1)
        for levels in (2, 3):
            for single in (True, False):
                jobs.append({"kind": "train", "preset": preset, "levels": levels, "single": single,
                             "batch": train_batch[preset], "steps": steps})
            jobs.append({"kind": "train", "preset": preset, "levels": levels, "single": False,
                         "batch": train_batch[preset], "steps": steps, "crop": default_crop_size(preset)})
            for single in (True, False):
                jobs.append({"kind": "sample", "preset": preset, "levels": levels, "single": single,
                             "batch": sample_batch[preset], "steps": 5 if quick else 50})
    if ablate:
        preset = presets[0]
        base = {"kind": "train", "preset": preset, "levels": 3, "single": False, "batch": train_batch[preset],
                "steps": 2 if quick else train_steps[preset]}
        jobs += [dict(base, execution={"channels_last": False}, ablation="layout: contiguous (NCHW)"),
                 dict(base, execution={"compile": True}, ablation="torch.compile"),
                 dict(base, execution={"checkpoint_activations": True}, ablation="activation checkpointing")]
        jobs.append({"kind": "sample", "preset": preset, "levels": 3, "single": False, "batch": sample_batch[preset],
                     "steps": 5 if quick else 50, "layout": "contiguous", "ablation": "layout: contiguous (NCHW)"})
        if device == "cpu":  # the layout choice that matters on the CPU, A/B in one process per preset
            jobs += [{"kind": "sample_layouts", "preset": p, "levels": 3, "batch": sample_batch[p],
                      "steps": 2 if quick else 10, "reps": 2 if quick else 4} for p in presets]
    if device == "cpu":
        jobs.append({"kind": "default_run", "steps": 3 if quick else 12})
    for job in jobs:
        job["device"] = device
    return jobs


def _estimates(results: list[dict], preset: str, levels: int) -> dict:
    """ldlib.training.memory's estimate for the benchmarked training steps (state + saved activations, MiB): the
    number to hold against the measured peak (CUDA: allocated; CPU: RSS above the process's baseline)."""
    import torch

    from ldlib.config import model_config
    from ldlib.runtime.device import resolve_precision
    from ldlib.training.memory import training_memory

    spec = next(r["spec"] for r in results if r["spec"]["kind"] == "train" and r["spec"]["preset"] == preset)
    precision = resolve_precision("auto", torch.device(spec["device"]))
    return {name: training_memory(model_config(preset, levels, single=name == "single"), spec["batch"],
                                  precision).total_bytes / 2**20 for name in ("single", "layered")}


def summarise(results: list[dict]) -> dict:
    """Pair single and layered rows per (preset, levels); compute ratios, FLOPs and MFU."""
    from ldlib.config import model_config
    from ldlib.flops import count_flops

    ceiling = next(r["result"] for r in results if r["spec"]["kind"] == "ceiling")
    conv_peak = ceiling["conv3x3_fp32_gflops"] * 1e9
    rows = []
    keys = sorted({(r["spec"]["preset"], r["spec"]["levels"]) for r in results if r["spec"]["kind"] in ("train", "sample")},
                  key=lambda k: (k[0], k[1]))
    for preset, levels in keys:
        def pick(kind, single, crop=False, ablation=None):
            for r in results:
                s = r["spec"]
                if (s["kind"], s.get("preset"), s.get("levels"), s.get("single")) == (kind, preset, levels, single) \
                        and bool(s.get("crop")) == crop and s.get("ablation") == ablation:
                    return r["result"]
            return None

        flops = {name: count_flops(model_config(preset, levels, single=name == "single")) for name in ("single", "layered")}
        ts, tl, tc = pick("train", True), pick("train", False), pick("train", False, crop=True)
        ss, sl = pick("sample", True), pick("sample", False)
        top = model_config(preset, levels).resolutions[-1]
        row = {"preset": preset, "levels": levels, "target": top, "flops_per_image": flops,
               "flops_ratio": flops["layered"] / flops["single"], "paper_flops_ratio": PAPER_FLOPS_RATIO[levels]}
        if ts and tl:
            row["train_images_per_s"] = {"single": ts["images_per_s"], "layered": tl["images_per_s"]}
            row["train_speed_ratio"] = tl["images_per_s"] / ts["images_per_s"]
            row["train_peak_rss_mib"] = {"single": ts["peak_rss_mib"], "layered": tl["peak_rss_mib"]}
            row["train_base_rss_mib"] = {"single": ts["base_rss_mib"], "layered": tl["base_rss_mib"]}
            if ts.get("cuda_peak_mib") is not None:
                row["train_cuda_peak_mib"] = {"single": ts["cuda_peak_mib"], "layered": tl["cuda_peak_mib"]}
            row["mfu"] = {n: r["images_per_s"] * 3 * flops[n] / conv_peak for n, r in (("single", ts), ("layered", tl))}
            row["train_memory_estimate_mib"] = _estimates(results, preset, levels)
        if tc and tl:
            row["crop"] = {"images_per_s": tc["images_per_s"], "speedup": tc["images_per_s"] / tl["images_per_s"],
                           "peak_rss_mib": tc["peak_rss_mib"]}
        if ss and sl:
            row["sample_s_per_image"] = {"single": ss["s_per_image_50_steps"], "layered": sl["s_per_image_50_steps"]}
            row["sample_speed_ratio"] = ss["s_per_image_50_steps"] / sl["s_per_image_50_steps"]
        rows.append(row)
    ablations = [{"what": r["spec"]["ablation"], "kind": r["spec"]["kind"], "preset": r["spec"]["preset"], **r["result"]}
                 for r in results if r["spec"].get("ablation")]
    default_run = next((r["result"] for r in results if r["spec"]["kind"] == "default_run"), None)
    layouts = [{"preset": r["spec"]["preset"], **r["result"]} for r in results if r["spec"]["kind"] == "sample_layouts"]
    return {"ceiling": ceiling, "rows": rows, "ablations": ablations, "default_run": default_run,
            "sample_layouts": layouts}


def paper_memory(device: str) -> list[dict]:
    """Table 1's ``paper`` models on one GPU (bf16 autocast, batch 32): this device's memory when it is a GPU,
    else the 80 GB the issue asks to fit. An estimate on the meta device (ldlib.training.memory), not a measurement."""
    import torch

    from ldlib.training.memory import table1_memory

    gib = torch.cuda.get_device_properties(0).total_memory / 2**30 if device == "cuda" else 80.0
    return table1_memory("paper", batch_size=32, precision="bf16", budget_gib=gib)


def _f(x, nd=3) -> str:
    return "—" if x is None else f"{x:.{nd}g}"


def markdown(report: dict, before: dict | None = None) -> str:
    c = report["ceiling"]
    meta = report["meta"]
    lines = [f"# Benchmark: {meta['device']} ({meta['cpu_capability']}, {meta['threads']} threads), torch {meta['torch']}",
             "", f"Measured {meta['date']} with `{meta['command']}` at commit {meta['commit']} "
             f"(library: {meta['code']})." + (f" {meta['note']}." if meta.get("note") else ""), "",
             "## Machine ceiling", "", "| op | fp32 GFLOP/s | bf16 GFLOP/s |", "|---|---|---|",
             f"| dense matmul | {_f(c['matmul_fp32_gflops'])} | {_f(c['matmul_bf16_gflops'])} |",
             f"| 3x3 conv (channels_last) | {_f(c['conv3x3_fp32_gflops'])} | {_f(c['conv3x3_bf16_gflops'])} |", "",
             "## Training (images/s, peak RSS MiB) and sampling (s/image, 50 DDIM steps, guidance 3)", "",
             "| preset | target px | train single | train layered | speed ratio layered/single | FLOPs ratio ours "
             "| FLOPs ratio paper | MFU single | MFU layered | layered + crop | crop speed-up | peak RSS single / layered "
             "| sample s/img single | sample s/img layered | sampling speed-up |",
             "|" + "---|" * 15]
    for r in report["rows"]:
        ips, mfu, rss = r.get("train_images_per_s", {}), r.get("mfu", {}), r.get("train_peak_rss_mib", {})
        crop, sm = r.get("crop", {}), r.get("sample_s_per_image", {})
        lines.append(
            f"| {r['preset']} | {r['target']} | {_f(ips.get('single'))} | {_f(ips.get('layered'))} "
            f"| {_f(r.get('train_speed_ratio'))} | {r['flops_ratio']:.3f} | *{r['paper_flops_ratio']}* "
            f"| {_f(mfu.get('single'), 2)} | {_f(mfu.get('layered'), 2)} | {_f(crop.get('images_per_s'))} "
            f"| {_f(crop.get('speedup'))} | {_f(rss.get('single'), 4)} / {_f(rss.get('layered'), 4)} "
            f"| {_f(sm.get('single'))} | {_f(sm.get('layered'))} | {_f(r.get('sample_speed_ratio'))} |")
    lines += ["", "Speed ratio > 1 and FLOPs ratio < 1 both favour the layered model; the paper's column is its "
              "Table 1 (reference). MFU: training FLOP/s (3 x forward FLOPs x images/s) over the conv ceiling above."]
    est_rows = [r for r in report["rows"] if r.get("train_memory_estimate_mib")]
    if est_rows:
        lines += ["", "Training memory, measured vs `ldlib.training.memory`'s estimate (MiB; measured = CUDA peak allocated, "
                  "or on the CPU peak RSS minus the process's RSS before training):", "",
                  "| preset | target px | single measured | single estimate | layered measured | layered estimate |",
                  "|---|---|---|---|---|---|"]
        for r in est_rows:
            est = r["train_memory_estimate_mib"]
            meas = r.get("train_cuda_peak_mib") or {n: r["train_peak_rss_mib"][n] - r["train_base_rss_mib"][n]
                                                      for n in ("single", "layered")}
            lines.append(f"| {r['preset']} | {r['target']} | {_f(meas['single'], 4)} | {_f(est['single'], 4)} "
                         f"| {_f(meas['layered'], 4)} | {_f(est['layered'], 4)} |")
    if report.get("paper_memory"):
        from ldlib.training.memory import memory_table

        lines += ["", "## The `paper` preset on one GPU (estimate)", "", memory_table(report["paper_memory"])]
    if report["ablations"]:
        preset = report["ablations"][0]["preset"]
        base = next(r for r in report["rows"] if r["preset"] == preset and r["levels"] == 3)
        default = {"train": base.get("train_images_per_s", {}).get("layered"),
                   "sample": base.get("sample_s_per_image", {}).get("layered")}
        lines += ["", f"## Speed choices (each alone against the library default; {preset}, layered, 3 resolutions)", "",
                  "| change | measures | library default | with the change | change/default | wall s of the run "
                  "(incl. set-up, compilation) |", "|---|---|---|---|---|---|"]
        for a in report["ablations"]:
            value = a.get("images_per_s") or a.get("s_per_image_50_steps")
            unit = "train images/s" if a["kind"] == "train" else "sample s/image"
            ratio = value / default[a["kind"]] if default[a["kind"]] else None
            lines.append(f"| {a['what']} | {unit} | {_f(default[a['kind']])} | {_f(value)} | {_f(ratio)} "
                         f"| {_f(a.get('wall_s'))} |")
    if report.get("sample_layouts"):
        lines += ["", "Sampling layout, interleaved A/B in one process (median seconds per call; speed-up = "
                  "contiguous / channels_last):", "", "| preset | channels_last s | contiguous s | speed-up |", "|---|---|---|---|"]
        for a in report["sample_layouts"]:
            med = _medians(a["seconds"])
            lines.append(f"| {a['preset']} | {_f(med['channels_last'])} | {_f(med['contiguous'])} | {_f(a['speedup'])} |")
    d = report.get("default_run")
    if d:
        lines += ["", "## Memory of a default training run", "",
                  f"`ldlib train --preset cpu16 --levels 3 --data {d['data']} --batch-size 32 --text-encoder minilm` "
                  f"({d['steps']} steps): peak RSS **{d['peak_rss_mib']:.0f} MiB** (target < 4096 MiB)."]
    if before:
        lines += ["", f"## Before / after (before: {before['meta']['code']} at {before['meta']['commit']}, "
                  f"measured {before['meta']['date']})", "",
                  "| preset | target | train img/s single before → after | train img/s layered before → after "
                  "| sample s/img single before → after | sample s/img layered before → after |", "|---|---|---|---|---|---|"]
        old = {(r["preset"], r["target"]): r for r in before["rows"]}
        for r in report["rows"]:
            o = old.get((r["preset"], r["target"]))
            if not o:
                continue
            cell = lambda key, n: f"{_f(o.get(key, {}).get(n))} → {_f(r.get(key, {}).get(n))}"  # noqa: E731
            lines.append(f"| {r['preset']} | {r['target']} | {cell('train_images_per_s', 'single')} "
                         f"| {cell('train_images_per_s', 'layered')} | {cell('sample_s_per_image', 'single')} "
                         f"| {cell('sample_s_per_image', 'layered')} |")
    return "\n".join(lines) + "\n"


def measure(jobs: list[dict], code: Path, meta: dict, raw: Path) -> list[dict]:
    """Run each job in its own worker; the results so far are rewritten to ``raw`` after each one, so a run cut
    short by a time limit (a lent GPU) keeps them (``--from-raw`` summarises them)."""
    from tqdm.auto import tqdm

    from ldlib.runtime.device import cpu_has_native_bf16

    native = cpu_has_native_bf16()
    results = []
    raw.parent.mkdir(parents=True, exist_ok=True)
    for spec in tqdm(jobs, desc="benchmark", unit="job"):
        spec["native_bf16"] = native
        results.append({"spec": spec, "result": run_worker(spec, code)})
        raw.write_text(json.dumps({"meta": meta, "raw": results}, indent=1))
    return results


def _commit(code: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(code), "describe", "--always", "--dirty"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", help="default: cpu16 cpu32 (plus paper on CUDA)")
    ap.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--quick", action="store_true", help="few steps: checks the harness, not a measurement")
    ap.add_argument("--ablate", action="store_true", help="also time each speed choice of ldlib.runtime.device alone")
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose ldlib is measured (default: this one)")
    ap.add_argument("--label", default="", help="suffix of the output name, e.g. before")
    ap.add_argument("--compare", type=Path, help="an earlier JSON from this harness: adds a before/after table")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    ap.add_argument("--from-raw", type=Path, help="summarise <stem>-raw.json, the jobs a run cut short finished")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["kind"]](spec)))
        return

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    presets = args.presets or (["cpu16", "cpu32", "paper"] if device == "cuda" else ["cpu16", "cpu32"])
    stem = device + (f"-{args.label}" if args.label else "") + ("-quick" if args.quick else "")
    if args.from_raw:  # a run cut short: summarise the jobs it finished, measure nothing
        saved = json.loads(args.from_raw.read_text())
        meta, results = saved["meta"], saved["raw"]
        meta["note"] = f"summarised from {args.from_raw.name} ({len(results)} jobs finished)"
    else:
        name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
        meta = {"device": f"{device} ({name})", "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "threads": torch.get_num_threads(), "torch": torch.__version__, "code": str(args.code),
                "commit": _commit(args.code), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "command": " ".join(["benchmarks/bench.py", *sys.argv[1:]]), "quick": args.quick}
        results = measure(plan(presets, device, args.quick, args.ablate), args.code.resolve(), meta,
                          args.out / f"{stem}-raw.json")
    report = summarise(results)
    report["paper_memory"] = None if args.from_raw else paper_memory(device)
    report["meta"] = meta
    report["raw"] = results
    before = json.loads(args.compare.read_text()) if args.compare else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(report, before))
    print(markdown(report, before))
    print(f"wrote {args.out / stem}.json and .md")
    if not args.from_raw:
        (args.out / f"{stem}-raw.json").unlink(missing_ok=True)  # its jobs are in the report's "raw"


if __name__ == "__main__":
    main()

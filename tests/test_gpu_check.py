"""The GPU acceptance script's CPU dry run: the same steps as on a GPU (GPU-marked tests, training with and
without torch.compile, sampling with both deterministic samplers), on the smoke preset."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, MPLBACKEND="agg")
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-dry-run", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "== GPU-marked tests" in done.stdout and "== done in" in done.stdout
    report = json.loads((tmp_path / "cpu-dry-run.json").read_text())
    assert report["preset"] == "smoke" and report["ceiling"]["bf16_tflops"] > 0 and report["complete"] is True
    train = {(r["model"], r["compile"]) for r in report["train"]}
    assert train == {("single64", False), ("single64", True), ("layered64", False), ("layered64", True)}
    for r in report["train"]:
        assert r["images_per_s"] > 0 and r["mfu"] > 0 and r["estimate_gib"] > 0 and r["final_loss"] > 0
    assert {(r["model"], r["method"]) for r in report["sample"]} == {
        (m, s) for m in ("single64", "layered64") for s in ("ddim", "dpmpp_2m")}
    table = (tmp_path / "cpu-dry-run.md").read_text()
    assert table.count("| layered64 |") == 4 and "MFU (bf16)" in table and "cut short" not in table


def test_gpu_check_refuses_to_run_without_a_gpu_unless_dry():
    import torch

    if torch.cuda.is_available():
        return
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True)
    assert done.returncode != 0 and "--cpu-dry-run" in done.stderr

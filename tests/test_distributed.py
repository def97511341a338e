"""torchrun on the CPU (Gloo): two processes give the one-process model; a dead rank ends the job."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("dist_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "LDLIB_DIST_TIMEOUT_S": "60"}


def torchrun(*args, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *kw.pop("extra", []),
           str(WORKER), *map(str, args)]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def shown(out: str) -> str:
    """Enough of torchrun's output to hold the failed rank's own message, not only the launcher's report."""
    return out[-8000:]


def alone(*args):
    return subprocess.run([sys.executable, str(WORKER), *map(str, args)], env=ENV, capture_output=True, text=True,
                          timeout=300)


def test_two_processes_equal_one(tmp_path):
    # the two processes also accumulate their shards over 2 micro-batches (no gradient sync on the first)
    job = torchrun("train", tmp_path / "ddp", 4, 4, 2)
    out, _ = job.communicate(timeout=300)
    assert job.returncode == 0, shown(out)
    single = alone("train", tmp_path / "one", 4, 4)
    assert single.returncode == 0, single.stderr[-2000:]
    a = load_file(str(tmp_path / "ddp" / "step-00000004" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "step-00000004" / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-4, worst  # same global batch and seed: the same model up to float reduction order
    moved = max((a[k] - load_file(str(tmp_path / "one" / "step-00000004" / "ema.safetensors"))[k]).abs().max().item()
                for k in a)
    assert moved > 0  # the comparison is not between two untouched initialisations


def test_a_dead_rank_ends_the_job_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    job = torchrun("train", run, 10_000, 2, start_new_session=True)
    deadline = time.time() + 240
    while not (run / "latest").exists():
        assert job.poll() is None and time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.5)
    workers = subprocess.run(["pgrep", "-f", f"dist_worker.py train {run}"], capture_output=True, text=True).stdout.split()
    workers = [int(p) for p in workers if int(p) != job.pid]
    assert len(workers) >= 2, workers
    os.kill(max(workers), signal.SIGKILL)  # one rank dies mid-run
    start = time.time()
    try:
        job.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail("the job hung after a rank died")
    assert job.returncode != 0 and time.time() - start < 120
    step = int((run / "latest").read_text().strip().removeprefix("step-"))
    resumed = alone("train", run, step + 2, 2)  # one process picks the run up from rank 0's last checkpoint
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"done step {step + 2} resumed_from {step}" in resumed.stdout


def test_sampling_is_sharded_and_gathered(tmp_path):
    assert alone("train", tmp_path / "run", 2, 2).returncode == 0
    job = torchrun("sample", tmp_path / "run", tmp_path / "ddp.pt")
    out, _ = job.communicate(timeout=300)
    assert job.returncode == 0, shown(out)
    single = alone("sample", tmp_path / "run", tmp_path / "one.pt")
    assert single.returncode == 0, single.stderr[-2000:]
    import torch

    a, b = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "one.pt")
    assert a.shape == (10, 3, 64, 64) and torch.equal(a, b)  # four batches over two ranks, same seeds


def test_a_finished_command_leaves_its_process_group(tmp_path):
    import torch.distributed as dist

    from ldlib.cli import leave_process_group

    leave_process_group()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    leave_process_group()
    assert not dist.is_initialized()

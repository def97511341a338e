"""scripts/default_campaign.sh pause/resume: it must stop the notebook kernel too, which papermill starts in a
session of its own (a process-group signal misses it: stops 52-53 "paused" a campaign that went on training)."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "default_campaign.sh"


def _state(pid):
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _descendants(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out] + [d for p in out for d in _descendants(int(p))]


def _wait_for(predicate, what, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _run(cache, *args):
    env = {**os.environ, "LDLIB_CACHE": str(cache)}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True)


@pytest.fixture
def fake_campaign(tmp_path):
    """A process named like the campaign with one child in its own session (as papermill's kernel) and one not."""
    proc = subprocess.Popen(["bash", "-c", "setsid sleep 60 & sleep 60 & wait", "default_campaign.sh"])
    (tmp_path / "campaign").mkdir()
    (tmp_path / "campaign" / "pid").write_text(f"{proc.pid}\n")
    _wait_for(lambda: len(_descendants(proc.pid)) == 2, "the fake campaign's two children")
    yield proc
    for pid in [proc.pid, *_descendants(proc.pid)]:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
    proc.wait()


def test_pause_stops_every_descendant_even_in_its_own_session_and_resume_restarts_them(tmp_path, fake_campaign):
    pids = [fake_campaign.pid, *_descendants(fake_campaign.pid)]
    assert len({os.getsid(p) for p in pids}) == 2  # the setsid child left the campaign's session
    done = _run(tmp_path, "pause", "tests")
    assert done.returncode == 0, done.stderr
    assert "3 processes" in done.stdout
    _wait_for(lambda: all(_state(p) == "T" for p in pids), "every process stopped")
    done = _run(tmp_path, "resume")
    assert done.returncode == 0, done.stderr
    _wait_for(lambda: all(_state(p) != "T" for p in pids), "every process running again")
    log = (tmp_path / "campaign" / "pauses.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in log] == ["pause", "resume"]
    assert log[0].split("\t")[2] == "tests"


def test_pause_refuses_a_pid_that_is_not_the_campaign(tmp_path):
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "campaign").mkdir()
        (tmp_path / "campaign" / "pid").write_text(f"{other.pid}\n")
        done = _run(tmp_path, "pause")
        assert done.returncode == 1
        assert "no campaign is running" in done.stdout
        assert _state(other.pid) != "T"
    finally:
        other.kill()
        other.wait()

"""benchmarks/suite.py's bookkeeping on made-up suites: notebook times from provenance, training throughput
from cached runs matched across code versions, totals and the refusal to overwrite."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("suite", Path(__file__).resolve().parent.parent / "benchmarks" / "suite.py")
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)


def fake_results(root: Path, times: dict[str, float]) -> Path:
    for name, wall in times.items():
        (root / name).mkdir(parents=True)
        (root / name / "provenance.json").write_text(json.dumps(
            {"notebook": name, "status": "ok", "wall_time_s": wall, "git": {"commit": "abc"}}))
    return root


def fake_run(cache: Path, folder: str, noise: str, ips: float, steps: int = 4, done: int | None = None,
             cpu_share: float | None = None) -> None:
    ckpt = cache / "runs" / folder / f"step-{steps:08d}"
    ckpt.mkdir(parents=True)
    (ckpt.parent / "latest").write_text(ckpt.name)
    (ckpt / "config.json").write_text(json.dumps({"diffusion": {"noise_kind": noise},
                                                  "train": {"steps": steps, "batch_size": 8}}))
    (ckpt / "history.json").write_text(json.dumps({"losses": [1.0] * (steps if done is None else done),
                                                   "images_per_s": ips, "cpu_share": cpu_share}))


def test_runs_matched_across_hashes_and_told_apart_by_noise_kind(tmp_path):
    before, after = tmp_path / "b", tmp_path / "a"
    fake_run(before, "cpu16-layered64-aaaaaaaaaaaa", "sinc", 10.0)
    fake_run(before, "cpu16-layered64-bbbbbbbbbbbb", "bilinear", 20.0)
    fake_run(after, "cpu16-layered64-cccccccccccc", "sinc", 16.0)
    fake_run(after, "cpu16-layered64-dddddddddddd", "bilinear", 20.0)
    fake_run(after, "cpu16-single64-eeeeeeeeeeee", "sinc", 5.0, done=2)  # unfinished: not counted
    fake_run(before, "cpu16-layered64-stacked-a-ffffffffffff", "sinc", 12.0)  # a stacked run: same config
    fake_run(after, "cpu16-layered64-stacked-a-999999999999", "sinc", 12.0)
    runs_b, runs_a = suite.training_runs(before), suite.training_runs(after)
    assert set(runs_b) == set(runs_a) and len(runs_a) == 3
    by_name = {r["name"]: r for r in runs_a.values()}
    assert by_name["cpu16-layered64"]["train_s"] in (4 * 8 / 16.0, 4 * 8 / 20.0)

    report = suite.compare(suite.notebook_times(str(fake_results(tmp_path / "rb", {"01": 300.0, "02": 100.0})), "x"),
                           suite.notebook_times(str(fake_results(tmp_path / "ra", {"01": 150.0, "02": 50.0})), "x"),
                           runs_b, runs_a, paused=(0.0, 40.0), interrupted=(0.0, 50.0))
    assert report["total_before_s"] == 400.0 and report["total_after_s"] == 160.0 + 50.0
    assert report["total_ratio"] == pytest.approx(400 / 210)
    assert report["median_images_per_s"] == {"before": 12.0, "after": 16.0, "runs": 3}
    flagged = {r["run"] + r["config"]: r["outlier"] for r in report["runs"] if r["before_images_per_s"]}
    assert list(flagged.values()).count("before slower") == 1 and list(flagged.values()).count(None) == 2
    assert report["like_for_like"]["runs"] == 2
    assert sorted(r["run"] for r in report["runs"]) == ["cpu16-layered64"] * 2 + ["cpu16-layered64-stacked-a"]
    partial = suite.compare(suite.notebook_times(str(tmp_path / "rb"), "x"),
                            {"01": {"wall_time_s": 10.0, "status": "ok"}}, {}, {})
    assert partial["total_ratio"] is None and "Incomplete" in suite.markdown(partial, "x", ("old", "new"))
    mixed = suite.compare({"01": {"wall_time_s": 1.0, "status": "ok", "commit": "a"}},
                          {"01": {"wall_time_s": 1.0, "status": "ok", "commit": "b"},
                           "02": {"wall_time_s": 1.0, "status": "ok", "commit": "c"}}, {}, {})
    assert not mixed["complete"] and mixed["commits"]["after"] == ["b", "c"]
    md = suite.markdown(report, "x", ("old", "new"))
    assert "| paused (subtracted) | 0 | -40 |" in md
    assert "contended?" in md and "Like for like (2 runs" in md
    assert "| interrupted attempt, before its restart (added) | 0 | +50 |" in md
    assert "| **total** | **400** | **210** |" in md and "x1.90" in md


def test_a_run_that_shared_the_cpu_is_flagged_by_its_own_cpu_share(tmp_path):
    fake_run(tmp_path / "b", "cpu16-layered64-aaaaaaaaaaaa", "sinc", 20.0, cpu_share=0.99)
    fake_run(tmp_path / "a", "cpu16-layered64-bbbbbbbbbbbb", "sinc", 17.0, cpu_share=0.7)  # within x1.3, yet shared
    fake_run(tmp_path / "b", "cpu16-single64-cccccccccccc", "sinc", 10.0)  # trained before the share was recorded
    fake_run(tmp_path / "a", "cpu16-single64-dddddddddddd", "sinc", 11.0, cpu_share=0.97)
    times = {"01": {"wall_time_s": 1.0, "status": "ok", "commit": "a"}}
    report = suite.compare(times, times, suite.training_runs(tmp_path / "b"), suite.training_runs(tmp_path / "a"))
    flags = {r["run"]: r["outlier"] for r in report["runs"]}
    assert flags == {"cpu16-layered64": "after CPU share < 0.9", "cpu16-single64": None}
    assert report["like_for_like"]["runs"] == 1
    md = suite.markdown(report, "x", ("old", "new"))
    assert "| 0.99 / 0.70 |" in md and "| - / 0.97 |" in md


def test_bad_inputs_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="results directory"):
        suite.notebook_times(str(tmp_path / "missing"), "default")
    with pytest.raises(SystemExit, match="LDLIB_CACHE"):
        suite.training_runs(tmp_path / "missing")
    fake_results(tmp_path / "r", {"01": 1.0})
    args = ["suite.py", "--profile", "x", "--before", str(tmp_path / "r"), "--after", str(tmp_path / "r"),
            "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", args)
    suite.main()
    assert (tmp_path / "out" / "suite-x.md").exists()
    with pytest.raises(SystemExit, match="--force"):
        suite.main()

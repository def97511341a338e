"""The benchmark harness's bookkeeping (pairing, ratios, MFU, tables) on made-up timings; the timings
themselves are measured by benchmarks/bench.py, never in tests."""

import importlib.util
from pathlib import Path

import pytest

from ldlib.config import model_config
from ldlib.flops import count_flops
from ldlib.training.memory import table1_memory

spec = importlib.util.spec_from_file_location("bench", Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def fake_results():
    jobs = bench.plan(["smoke"], "cpu", quick=True, ablate=True)
    out = []
    for job in jobs:
        kind = job["kind"]
        if kind == "ceiling":
            r = {"matmul_fp32_gflops": 100.0, "matmul_bf16_gflops": 1.0, "conv3x3_fp32_gflops": 50.0,
                 "conv3x3_bf16_gflops": 1.0}
        elif kind == "train":
            ips = 10.0 if job["single"] else 20.0 if not job.get("crop") else 30.0
            r = {"images_per_s": ips / (2 if job.get("ablation") else 1), "wall_s": 1.0, "peak_rss_mib": 500.0,
                 "base_rss_mib": 300.0, "cuda_peak_mib": None}
        elif kind == "sample":
            r = {"s_per_image_50_steps": 2.0 if job["single"] else 1.0, "steps_timed": 5, "peak_rss_mib": 400.0,
                 "cuda_peak_mib": None}
        elif kind == "sample_layouts":
            r = {"seconds": {"channels_last": [1.0, 1.1, 0.9], "contiguous": [1.3, 1.2, 1.25]}, "speedup": 1.25}
        else:
            r = {"data": "shapes", "steps": 3, "wall_s": 5.0, "peak_rss_mib": 1200.0, "returncode": 0}
        out.append({"spec": job, "result": r})
    return out


def test_plan_covers_every_measurement_the_issue_asks_for():
    jobs = bench.plan(["cpu16"], "cpu", quick=False, ablate=False)
    kinds = [j["kind"] for j in jobs]
    assert kinds.count("ceiling") == 1 and kinds.count("default_run") == 1
    train = [j for j in jobs if j["kind"] == "train"]
    assert {(j["levels"], j["single"], bool(j.get("crop"))) for j in train} == {
        (2, True, False), (2, False, False), (2, False, True), (3, True, False), (3, False, False), (3, False, True)}
    assert all(j["steps"] == 50 for j in jobs if j["kind"] == "sample")


def test_summary_ratios_and_mfu():
    report = bench.summarise(fake_results())
    assert [(r["preset"], r["target"]) for r in report["rows"]] == [("smoke", 32), ("smoke", 64)]
    row = report["rows"][1]
    assert row["train_speed_ratio"] == pytest.approx(2.0)
    assert row["crop"]["speedup"] == pytest.approx(1.5)
    assert row["sample_speed_ratio"] == pytest.approx(2.0)
    flops = count_flops(model_config("smoke", 3))
    assert row["mfu"]["layered"] == pytest.approx(20.0 * 3 * flops / 50e9)
    assert row["flops_ratio"] == pytest.approx(flops / count_flops(model_config("smoke", 3, single=True)))
    assert len(report["ablations"]) == 4 and report["default_run"]["peak_rss_mib"] == 1200.0
    assert "activation checkpointing" in [a["what"] for a in report["ablations"]]
    est = row["train_memory_estimate_mib"]
    assert 0 < est["single"] and 0 < est["layered"]  # ldlib.training.memory's estimate, beside the measured peak


def test_markdown_has_the_tables_and_the_before_after():
    report = bench.summarise(fake_results())
    report["meta"] = {"device": "cpu (test)", "cpu_capability": "AVX2", "threads": 2, "torch": "x", "code": "here",
                      "commit": "abc", "date": "today", "command": "bench.py", "quick": True}
    report["paper_memory"] = table1_memory("smoke", batch_size=4, precision="fp32", budget_gib=1.0)
    text = bench.markdown(report, before=report)
    for heading in ("Machine ceiling", "Training", "Speed choices", "Memory of a default training run", "Before / after",
                    "measured vs `ldlib.training.memory`'s estimate", "on one GPU (estimate)"):
        assert heading in text
    assert "| smoke | 64 | 10 | 20 | 2 |" in text
    assert "| layout: contiguous (NCHW) | train images/s | 20 | 10 | 0.5 |" in text
    assert "| smoke | 1 | 1.25 | 1.25 |" in text  # the interleaved sampling-layout A/B, medians


def test_a_run_cut_short_keeps_its_jobs_and_from_raw_summarises_them(tmp_path, monkeypatch):
    results = fake_results()
    jobs = [r["spec"] for r in results]
    done = iter(r["result"] for r in results[:5])

    def worker(spec, code):  # five jobs finish, then the run is cut (a lent GPU's time limit)
        try:
            return next(done)
        except StopIteration:
            raise KeyboardInterrupt from None

    monkeypatch.setattr(bench, "run_worker", worker)
    raw = tmp_path / "cpu-raw.json"
    with pytest.raises(KeyboardInterrupt):
        bench.measure(jobs, Path("."), {"device": "cpu (test)"}, raw)
    import json

    saved = json.loads(raw.read_text())
    assert [r["result"] for r in saved["raw"]] == [r["result"] for r in results[:5]]
    meta = {"device": "cpu (test)", "cpu_capability": "AVX2", "threads": 2, "torch": "x", "code": "here",
            "commit": "abc", "date": "today", "command": "bench.py", "quick": True}
    raw.write_text(json.dumps({"meta": meta, "raw": saved["raw"]}))
    monkeypatch.setattr("sys.argv", ["bench.py", "--device", "cpu", "--from-raw", str(raw), "--out", str(tmp_path)])
    bench.main()
    text = (tmp_path / "cpu.md").read_text()
    assert "summarised from cpu-raw.json (5 jobs finished)" in text and "| smoke | 32 | 10 | 20 | 2 |" in text
    assert raw.exists()  # the input is left in place

"""The studies' machinery: sweep grids, interval verdicts, cropping checks, equal-time budgets, shared runs."""

import math

import numpy as np
import pytest
import torch

from ldlib.evaluation import Evaluation, better, metrics
from ldlib.evaluation.reliance import noise_reliance
from ldlib.reproduction import schedule_shifting as shifting
from ldlib.reproduction import strategic_cropping as cropping
from ldlib.reproduction.recorder import Recorder
from ldlib.reproduction.study import Budget, compare, record_scores, train_layered
from ldlib.schedules import PAPER_SHIFTS, simple_diffusion_shift
from ldlib.training import TrainResult


def fake_eval(fid, half, alignment=0.5):
    scores = metrics.Scores(fid, (fid - half, fid + half), 0.1, (0.05, 0.15), 2.0, (1.9, 2.1),
                            metrics.Protocol("ref", 1, 1))
    return Evaluation(scores, alignment, (alignment - 0.05, alignment + 0.05), torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_shift_grid_holds_the_paper_and_simple_diffusion():
    for ratio in (2, 4):
        grid = shifting.shift_grid(ratio, extra=[PAPER_SHIFTS[ratio], -5.0])
        assert grid == sorted(grid, reverse=True) and len(grid) == len(set(grid)) == 4  # duplicates dropped
        assert 0.0 in grid and PAPER_SHIFTS[ratio] in grid and simple_diffusion_shift(ratio, 1) in grid
    assert [shifting.shift_label(s) for s in shifting.shift_grid(4)] == ["none", "log(1/16)", "log(1/32)"]


def test_interval_verdicts():
    good, bad, close = fake_eval(10, 1), fake_eval(20, 1), fake_eval(11, 2)
    assert better(good, bad, "fid") is True and better(bad, good, "fid") is False
    assert better(good, close, "fid") is None  # overlapping intervals decide nothing
    assert better(fake_eval(1, 1, 0.9), fake_eval(1, 1, 0.2), "alignment") is True  # higher is better
    rec = Recorder(None, "t")
    compare(rec, "k", "paper", ("a", [good] * 2), ("b", [bad] * 2), "fid", paper_expects_a_better=False)
    assert rec.claims[-1].agrees is False
    compare(rec, "k1", "paper", ("a", good), ("b", bad), "fid", paper_expects_a_better=False)
    one = rec.claims[-1]  # one training seed: the interval leaves out the seeds' spread, no verdict
    assert one.verdict == "unresolved" and one.seeds_to_resolve >= 2 and "training-seed spread unmeasured" in one.we_find
    results = [(0.0, None, [fake_eval(15, 1)] * 2), (-1.0, None, [fake_eval(10, 1)] * 2),
               (-2.0, None, [fake_eval(11, 1.5)] * 2)]
    assert shifting.best_shift(results) == -1.0  # the lowest mean FID over seeds
    assert shifting.sweep_points(results)[1][:2] == (-1.0, 10)


def test_sweep_claims_compare_the_paper_value_with_each_other_shift():
    rec = Recorder(None, "t")
    paper2, paper4 = PAPER_SHIFTS[2], PAPER_SHIFTS[4]
    sweep2 = [(0.0, None, [fake_eval(30, 1)] * 3), (paper2, None, [fake_eval(10, 1)] * 3)]
    sweep3 = [(0.0, None, [fake_eval(10, 0.3)] * 3), (paper4, None, [fake_eval(10.2, 0.3)] * 3)]
    shifting.record_sweeps(rec, sweep2, sweep3)
    # log(1/8) beats none clearly; log(1/32) vs none lies within the 10% margin
    assert [c.verdict for c in rec.claims] == ["agrees", "no effect"]
    assert "log(1/8) beats none (2 resolutions)" in rec.claims[0].key


def test_equal_time_images_round_the_speed_up_to_an_eighth():
    assert cropping.equal_time_images(12800, 1.62, 32) == 12800 * 13 // 8  # 1.62 -> 1.625
    assert cropping.equal_time_images(12800, 1.64, 32) == cropping.equal_time_images(12800, 1.61, 32)  # noise
    assert cropping.equal_time_images(24, 0.1, 8) == 8  # at least one batch, even for a slow-down
    assert cropping.equal_time_images(8, 3.0, 8) % 8 == 0


def test_time_to_loss():
    run = TrainResult(None, 4, losses=[1.0, 0.8, 0.5, 0.4])
    assert cropping.time_to_loss(run, images_per_s=8.0, batch_size=4, target=0.5, smooth=1) == pytest.approx(1.5)
    assert math.isinf(cropping.time_to_loss(run, 8.0, 4, target=0.1, smooth=1))


def test_crop_consistency_isolates_geometry_from_groupnorm():
    exact = cropping.crop_consistency("smoke", 3, 32, without_norms=True)
    assert [r["max abs diff, central half"] for r in exact] == pytest.approx([0, 0, 0], abs=1e-5)
    assert exact[-1]["max abs diff"] > 1e-4  # the border differs, so the check can see a wrong crop
    normed = cropping.crop_consistency("smoke", 3, 32)
    assert normed[-1]["max abs diff, central half"] > 1e-4  # GroupNorm sees the crop's statistics


def test_the_speed_is_measured_once_per_machine_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    measured = []
    monkeypatch.setattr(cropping, "training_speed", lambda *a, **k: measured.append(a) or 100.0 + len(measured))
    first = cropping.measured_training_speed("smoke", 3, 8, 16, steps=2)
    assert cropping.measured_training_speed("smoke", 3, 8, 16, steps=2) == first == 101.0  # read back
    assert len(measured) == 1
    assert cropping.measured_training_speed("smoke", 3, 8, None, steps=2) == 102.0  # another variant is measured
    from ldlib.reproduction import runner

    real = runner.device_info
    monkeypatch.setattr(runner, "device_info", lambda: {**real(), "cpu": "another machine"})
    assert cropping.measured_training_speed("smoke", 3, 8, 16, steps=2) == 103.0  # another machine measures anew


def test_training_speed_runs_cropped_and_full():
    assert cropping.training_speed("smoke", 3, 2, None, steps=1, warmup=0) > 0
    assert cropping.training_speed("smoke", 3, 2, 16, steps=1, warmup=0) > 0
    assert cropping.default_crop_size("paper") == 128  # 256 -> 128 as in section 3.1


def test_runs_are_shared_and_stacked_runs_are_not(tmp_path, monkeypatch):
    from ldlib.reproduction.table1 import train_rows

    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    data = {"kind": "shapes", "n": 16, "seed": 0}
    budget = Budget(16, 8, 1e-3, text_encoder="hash")
    table = train_rows("smoke", data, budget, progress=False)
    same = train_layered("smoke", 3, data, budget, progress=False)
    assert same.run_dir == table[-1].runs[16][0].run_dir  # Table 1's layered model serves the noise ablation
    stacked = train_layered("smoke", 2, data, budget, init_from=table[0].runs[16][0], label="stacked", progress=False)
    assert stacked.run_dir != table[2].runs[16][0].run_dir and stacked.step == 2
    unshifted = train_rows("smoke", data, budget, rule="none", progress=False, only=("single32",))
    assert unshifted[0].runs[16][0].run_dir != table[1].runs[16][0].run_dir  # the rule is part of the run


def test_one_run_per_seed_serves_every_budget_in_any_order(tmp_path, monkeypatch):
    """The run cache keeps the grid's milestones on the way to any budget, so a smaller budget asked after a
    larger one is read back; a budget off the grid is retraced in a branch from the milestone below it, and
    equals the straight run bit for bit."""
    from ldlib.reproduction import run_cache
    from ldlib.training.checkpoint import milestones, read_weights

    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(run_cache, "GRID_STEPS", 2)
    data = {"kind": "shapes", "n": 16, "seed": 0}
    long = train_layered("smoke", 2, data, Budget(64, 8, 1e-3, text_encoder="hash"), progress=False)
    assert sorted(milestones(long.run_dir)) == [2, 4, 8]
    grid = train_layered("smoke", 2, data, Budget(32, 8, 1e-3, text_encoder="hash"), progress=False)
    assert grid.run_dir == long.run_dir and grid.step == 4 and grid.checkpoint.name == "step-00000004"
    off = train_layered("smoke", 2, data, Budget(24, 8, 1e-3, text_encoder="hash"), progress=False)
    assert off.run_dir.parent.name == "branches" and off.resumed_from == 2 and off.step == 3
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "straight"))
    straight = train_layered("smoke", 2, data, Budget(24, 8, 1e-3, text_encoder="hash"), progress=False)
    assert straight.losses == off.losses
    for k, v in read_weights(straight.checkpoint / "ema.safetensors").items():
        assert torch.equal(v, read_weights(off.checkpoint / "ema.safetensors")[k]), k


def test_scores_of_several_seeds_carry_their_mean_interval_and_range():
    rec = Recorder(None, "t")
    record_scores(rec, "m", [fake_eval(10, 1, 0.5), fake_eval(14, 1, 0.7), fake_eval(12, 1, 0.6)], note="n")
    fid = {m.key: m for m in rec.metrics}["FID m"]
    assert fid.value == pytest.approx(12) and fid.ci[0] < 10 and fid.ci[1] > 14  # t across 3 seeds: wider
    assert fid.note == "n; mean of 3 training seeds; seeds 10-14"
    assert {m.key: m for m in rec.metrics}["alignment m"].note.endswith("seeds 0.5-0.7")
    record_scores(rec, "one", fake_eval(10, 1))
    assert "seeds" not in {m.key: m for m in rec.metrics}["FID one"].note  # one seed: no range to give


def test_sinc_noise_leaves_a_noise_free_part_in_the_lower_layers():
    from ldlib.schedules import LayeredSchedule

    g = torch.Generator().manual_seed(0)
    photo = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    sch = LayeredSchedule.paper([8, 16, 32])
    draws = [shifting.noise_free_part(photo, torch.randn(photo.shape, generator=g, dtype=torch.float64), 0.6, sch)
             for _ in range(2)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*draws))  # no noise in it: any eps0 gives the same
    flat = torch.full((1, 3, 32, 32), 0.5, dtype=torch.float64)
    eps0 = torch.randn(flat.shape, generator=g, dtype=torch.float64)
    # on a flat image c_i = (alpha_i - T sigma_i alpha_top / sigma_top) D(x0, i): zero under simple diffusion's
    # shift (SNR_i = T^2 SNR_top), (1 - T) alpha D(x0, i) unshifted
    simple = shifting.noise_free_part(flat, eps0, 0.6, LayeredSchedule.simple_diffusion([8, 16, 32]))
    assert all(c.abs().max() < 1e-6 for c in simple)
    none = shifting.noise_free_part(flat, eps0, 0.6, LayeredSchedule.unshifted([8, 16, 32]))
    alpha = float(LayeredSchedule.unshifted([8, 16, 32]).alpha_sigma(torch.tensor(0.6))[0][0])
    assert [float(c.mean()) for c in none] == pytest.approx([(1 - 4) * alpha * 0.5, (1 - 2) * alpha * 0.5], rel=1e-5)
    ratios = shifting.noise_free_ratio(photo, LayeredSchedule.unshifted([8, 16, 32]), [0.3, 0.6], generator=g)
    assert list(ratios) == [8, 16] and all(r.shape == (2,) and (r > 0).all() for r in ratios.values())


def test_noise_reliance_probes_a_model_with_its_lower_noise_as_trained_and_independent(smoke_run):
    from ldlib.data.images import to_float

    run, data, text, index = smoke_run
    out = noise_reliance(run.checkpoint, to_float(data.images).float(), text[index], ts=(0.3, 0.8))
    assert out.shape == (2, 2) and np.isfinite(out).all() and (out > 0).all()
    assert not np.allclose(out[:, 0], out[:, 1])  # only the lower layer's noise differs, and the output sees it
    rec = Recorder(None, "t")
    text_out = shifting.record_reliance(rec, {0.0: [np.array([[1.0, 4.0], [1.0, 2.0]]), np.array([[1.0, 2.0], [1.0, 2.0]])]}, 2)
    m = rec.metrics[0]
    assert shifting.reliance_ratios([np.array([[1.0, 4.0], [1.0, 2.0]])]) == [3.0]
    assert m.value == pytest.approx(2.5) and m.ci[0] < 2 and m.ci[1] > 3 and "seeds 2-3" in m.note
    assert "none 2.50x" in text_out

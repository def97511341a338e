"""Verdicts with a margin (agrees / disagrees / no effect / unresolved) from paired differences across seeds,
analytic checks tallied apart from empirical claims, precision/recall, and the in-distribution reference."""

import json

import numpy as np
import pytest
import torch

from ldlib.evaluation import Evaluation, metrics, paired_difference
from ldlib.data import shapes_dataset
from ldlib.data.images import CaptionedImages
from ldlib.evaluation.evaluator import Evaluator, _fixed_subset, other_real_images, reference_sets
from ldlib.reproduction.recorder import (ANALYTIC, EMPIRICAL, Claim, Recorder, agrees_of, claims_table,
                                         in_paper_units, judge_difference, seeds_to_reach)
from ldlib.reproduction.report import build_report, tally, write_claims_figure, write_report
from ldlib.reproduction.study import compare, floors_text, record_floors


def test_judge_difference_four_verdicts():
    # the paper says a - b < 0 (a's FID lower); scale 100, delta 10% -> band +-10
    assert judge_difference(-5.0, (-8.0, -2.0), -1, 100.0, seeds=3).verdict == "agrees"
    assert judge_difference(5.0, (2.0, 8.0), -1, 100.0, seeds=2).verdict == "disagrees"
    assert judge_difference(1.0, (-4.0, 6.0), -1, 100.0, seeds=3).verdict == "no effect"
    wide = judge_difference(-5.0, (-25.0, 15.0), -1, 100.0, seeds=3)
    assert wide.verdict == "unresolved"
    # half-width 20 must shrink below |diff| 5 or fit in the band (10 - 5 = 5): the seeds' sd is
    # 20 sqrt(3) / t(2 df) = 8.05, and t(n - 1) 8.05 / sqrt(n) <= 5 first at n = 13 (t 2.18); 1/sqrt(n) alone
    # with the 3-seed quantile kept would say 48
    assert wide.seeds_to_resolve == 13
    # a difference that excludes 0 is decided even when small: its sign is what the paper claims
    assert judge_difference(-0.5, (-0.9, -0.1), -1, 100.0, seeds=3).verdict == "agrees"
    # one training seed decides nothing, however narrow its interval (the sample bootstrap's alone); what would
    # decide it takes the seeds' spread to be the samples' (half 3 -> sd 1.53): t(1) 1.53 / sqrt(2) = 13.8 > 5,
    # t(2) 1.53 / sqrt(3) = 3.8 <= 5
    for ci in [(-8.0, -2.0), (2.0, 8.0), (-4.0, 6.0)]:
        one = judge_difference(sum(ci) / 2, ci, -1, 100.0, seeds=1)
        assert one.verdict == "unresolved" and one.seeds_to_resolve >= 2
    assert judge_difference(-5.0, (-8.0, -2.0), -1, 100.0, seeds=1).seeds_to_resolve == 3
    with pytest.raises(ValueError):
        judge_difference(0.0, (-1, 1), 0, 1.0)


def test_the_verdict_reads_off_the_difference_in_the_papers_units():
    # the paper says a - b < 0; a - b = -3 [-5, -1] against a margin of 10% of 20 = 2: in the paper's units
    # (> 0 its direction, 1 its effect size) 1.5 [0.5, 2.5]
    judged = judge_difference(-3.0, (-5.0, -1.0), -1, 20.0, seeds=3)
    assert judged.effect == {"diff": -3.0, "ci": [-5.0, -1.0], "paper_sign": -1, "margin": 2.0, "seeds": 3}
    assert in_paper_units(judged.effect) == pytest.approx((1.5, 0.5, 2.5))
    assert in_paper_units({**judged.effect, "margin": 0.0}) is None  # nothing to measure against
    rng = np.random.default_rng(3)
    for _ in range(300):
        diff, half, sign = rng.normal(0, 10), rng.uniform(0.1, 20), int(rng.choice([-1, 1]))
        seeds = int(rng.integers(1, 6))
        judged = judge_difference(diff, (diff - half, diff + half), sign, rng.uniform(1, 100), rng.uniform(0.05, 0.3),
                                  seeds)
        x, lo, hi = in_paper_units(judged.effect)
        assert lo <= x <= hi
        expected = ("unresolved" if seeds < 2 else "agrees" if lo > 0 else "disagrees" if hi < 0
                    else "no effect" if -1 <= lo and hi <= 1 else "unresolved")
        assert judged.verdict == expected


def test_claims_figure_draws_each_judged_claim_and_goes_with_them(tmp_path):
    import matplotlib

    matplotlib.use("agg")
    from ldlib.reproduction.plots import VERDICT_COLOURS, claims_forest
    from ldlib.reproduction.runner import write_summary

    rec = Recorder(tmp_path / "smoke" / "05_table1", "05_table1")
    judged = [judge_difference(-3.0, (-5.0, -1.0), -1, 20.0, seeds=3), judge_difference(1.0, (-30.0, 32.0), 1, 10.0)]
    for i, j in enumerate(judged):
        rec.claim(f"claim {i}", "p", "w", verdict=j.verdict, seeds_to_resolve=j.seeds_to_resolve, effect=j.effect)
    rec.claim("fewer FLOPs", "p", "w", True, kind=ANALYTIC)  # no paired difference: not drawn
    rec.save()
    (rec.output_dir / "provenance.json").write_text(json.dumps({"status": "ok"}))
    profile = tmp_path / "smoke"
    rows = [("05", f"claim {i}", j.verdict, in_paper_units(j.effect)) for i, j in enumerate(judged)]
    fig = claims_forest(rows)
    points = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert [p.get_xdata()[0] for p in points] == pytest.approx([1.5, 1.0])  # margins 2 and 1
    assert [p.get_color() for p in points] == [VERDICT_COLOURS["agrees"], VERDICT_COLOURS["unresolved"]]
    assert "05 · claim 1" in [t.get_text() for t in fig.axes[0].get_yticklabels()]
    page = write_report(profile).read_text()
    assert (profile / "claims.png").stat().st_size > 5_000 and "<img src='claims.png'" in page
    summary = write_summary(profile).read_text()
    assert "![every empirical claim](claims.png)" in summary
    # the same tally as the report's: one claim each agrees / unresolved, one analytic check
    assert "- Empirical claims (trained models), 2: 1 agrees, 0 disagrees, 0 no effect, 1 unresolved" in summary
    # claim 1 was judged on one seed: the tally says why it is unresolved
    assert "1 unresolved (1 of the unresolved rest on fewer than 2 training seeds)" in summary
    assert "(1 of the unresolved rest on fewer than 2 training seeds)" in page
    assert "- Analytic checks (true by construction or exact computation), 1: 1 agrees, 0 disagrees" in summary
    metrics_json = rec.output_dir / "metrics.json"
    saved = json.loads(metrics_json.read_text())
    metrics_json.write_text(json.dumps({**saved, "claims": [{**c, "effect": None} for c in saved["claims"]]}))
    assert write_claims_figure(profile) is None and not (profile / "claims.png").exists()  # no stale figure
    assert "claims.png" not in write_report(profile).read_text()


def test_seeds_to_reach_uses_the_t_quantile_of_the_new_seed_count():
    from scipy import stats

    for half, seeds, target in [(20.0, 3, 5.0), (15.1, 3, 3.8), (0.12, 3, 0.108), (9.0, 5, 1.0), (4.0, 2, 3.0)]:
        n = seeds_to_reach(half, seeds, target)
        s = half * np.sqrt(seeds) / stats.t.ppf(0.975, seeds - 1)
        width = lambda k: stats.t.ppf(0.975, k - 1) * s / np.sqrt(k)  # noqa: E731
        assert n > seeds and width(n) <= target < width(n - 1)
    # one seed: the seeds' sd taken to be the sample bootstrap's (20 / 1.96 = 10.2); t(n - 1) 10.2 / sqrt(n) <= 5
    # first at n = 19 (t 2.10); and at least two seeds even where the bootstrap's interval is already narrow
    assert seeds_to_reach(20.0, 1, 5.0) == 19
    assert seeds_to_reach(1.0, 1, 5.0) == 2
    assert seeds_to_reach(4.0, 3, 5.0) == 3  # already narrow enough
    assert seeds_to_reach(1e6, 3, 1e-6) == 10_000  # capped


def test_claim_verdicts_map_to_agrees():
    assert agrees_of("agrees") is True and agrees_of("disagrees") is False
    assert agrees_of("no effect") is False and agrees_of("unresolved") is None
    with pytest.raises(ValueError, match="verdict must be one of"):
        agrees_of("maybe")
    with pytest.raises(ValueError, match="kind"):
        Claim("k", "p", "w", None, kind="guess")
    rec = Recorder(None, "t")
    c = rec.claim("k", "p", "w", verdict="no effect", kind=ANALYTIC)
    assert (c.agrees, c.verdict, c.kind) == (False, "no effect", ANALYTIC)
    assert rec.claim("k2", "p", "w", True).verdict == "agrees"  # a yes/no check
    row = claims_table([{"key": "k", "paper_says": "p", "we_find": "w", "agrees": None, "verdict": "unresolved",
                         "kind": EMPIRICAL, "seeds_to_resolve": 7}])
    assert row.endswith("| unresolved (~7 seeds would decide it) |")


def test_report_tallies_analytic_apart_from_empirical(tmp_path):
    claims = [{"key": "a", "paper_says": "", "we_find": "", "agrees": True, "verdict": "agrees", "kind": "analytic"},
              {"key": "b", "paper_says": "", "we_find": "", "agrees": False, "verdict": "no effect", "kind": "empirical"},
              {"key": "c", "paper_says": "", "we_find": "", "agrees": None}]  # written before verdicts had 4 words
    counts = tally(claims)
    assert counts["analytic"]["agrees"] == 1 and sum(counts["analytic"].values()) == 1
    assert counts["empirical"]["no effect"] == 1 and counts["empirical"]["unresolved"] == 1
    folder = tmp_path / "smoke" / "05_table1"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"notebook": "05_table1", "metrics": [], "claims": claims,
                                                     "figures": []}))
    (folder / "provenance.json").write_text(json.dumps({"status": "ok"}))
    page = build_report(tmp_path / "smoke")
    assert "Empirical claims (trained models), 2:" in page and "Analytic checks" in page
    assert "<span class='no-effect'>1 no effect</span>" in page and "training seeds)" not in page


def test_precision_recall_separate_fidelity_from_diversity():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 8))
    assert metrics.precision_recall(real, real.copy()) == (1.0, 1.0)
    collapsed = real[:5].repeat(40, axis=0) + 1e-3 * rng.normal(size=(200, 8))  # faithful but not diverse
    p, r = metrics.precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.3
    far = real + 100.0  # diverse but nowhere near the data
    assert metrics.precision_recall(real, far) == (0.0, 0.0)


def test_pairing_removes_shared_variance_and_seeds_widen_intervals():
    rng = np.random.default_rng(1)
    shared = rng.normal(size=(300, 4))  # what both arms share (prompt and noise)
    a, b = shared + 0.05, shared + 0.01 * rng.normal(size=(300, 4))
    stat = lambda x: float(x.mean())  # noqa: E731
    d, ci, sd = metrics.paired_bootstrap(stat, a, b, n_boot=200)
    assert ci[0] > 0 and abs(d - 0.05) < 0.01  # the shift is found although it is tiny against the spread
    _, ci_a = d, metrics.bootstrap_ci(stat, a, 200)
    assert (ci[1] - ci[0]) < (ci_a[1] - ci_a[0]) / 5  # an unpaired interval would be far wider
    one, one_ci = metrics.across_seeds([d], [sd])
    assert one_ci == pytest.approx((d - 1.96 * sd, d + 1.96 * sd))
    mean, three = metrics.across_seeds([0.04, 0.05, 0.06], [sd] * 3)
    assert mean == pytest.approx(0.05) and three[0] < 0.04 and three[1] > 0.06  # t with 2 d.o.f. is wide
    # seeds that agree by chance cannot claim more than their samples allow
    _, same = metrics.across_seeds([0.05, 0.05, 0.05], [sd] * 3)
    assert same[1] - same[0] > 0


def _eval(pool3, real):
    scores = metrics.scores(real, metrics.Features(pool3, np.zeros((len(pool3), 10), dtype=np.float32)),
                            metrics.Protocol("ref", len(real), len(pool3)), n_boot=5)
    return Evaluation(scores, None, None, torch.zeros(len(pool3), 3, 8, 8, dtype=torch.uint8),
                      metrics.Features(pool3, np.zeros((len(pool3), 10), dtype=np.float32)), reference=real)


def test_paired_difference_and_compare_across_seeds():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(300, 16)).astype(np.float32)
    good = [_eval(rng.normal(size=(120, 16)).astype(np.float32), real) for _ in range(3)]
    bad = [_eval((rng.normal(size=(120, 16)) + 1.0).astype(np.float32), real) for _ in range(3)]
    d, ci, seeds = paired_difference(good, bad, "fid", n_boot=50)
    assert seeds == 3 and ci[1] < 0 < -d
    rec = Recorder(None, "t")
    compare(rec, "good beats bad", "p", ("good", good), ("bad", bad), "fid", True)
    c = rec.claims[-1]
    assert (c.verdict, c.kind) == ("agrees", EMPIRICAL) and "3 seeds" in c.we_find
    assert c.effect["diff"] == pytest.approx(d) and c.effect["seeds"] == 3  # the numbers the figure draws
    compare(rec, "bad beats good", "p", ("bad", bad), ("good", good), "fid", True)
    assert rec.claims[-1].verdict == "disagrees"
    compare(rec, "same", "p", ("a", good[:2]), ("b", good[:2]), "kid", True)
    assert rec.claims[-1].verdict == "no effect"  # a model against itself: exactly zero, inside any margin
    compare(rec, "same, one seed", "p", ("a", good[0]), ("b", good[0]), "kid", True)
    assert rec.claims[-1].verdict == "unresolved"  # ... but one training seed decides nothing
    with pytest.raises(ValueError, match="one evaluation per seed"):
        paired_difference(good, bad[:2], "fid")


def test_floors_are_recorded_once_per_sample_count_and_resolution():
    class Protocol:  # Evaluator.floor_at without Inception: FID 1e4 / n + res, KID res * 1e-4
        split = "train"

        def __init__(self, n):
            self.n_samples, self.asked = n, []

        def floor_at(self, res):
            self.asked.append(res)
            return 1e4 / self.n_samples + res, res * 1e-4, self.n_samples

    final, curve, twin = Protocol(1000), Protocol(250), Protocol(1000)
    rec = Recorder(None, "t")
    floors = record_floors(rec, [final, curve, twin], [32, 64])
    expected = {(1000, 32): (42.0, 0.0032), (1000, 64): (74.0, 0.0064), (250, 32): (72.0, 0.0032),
                (250, 64): (104.0, 0.0064)}
    assert floors.keys() == expected.keys()
    assert all(floors[k] == pytest.approx(v) for k, v in expected.items())
    assert twin.asked == []  # a sample count already scored is not scored again
    values = {m.key: m.value for m in rec.metrics}
    assert values["FID floor: 250 other training images @ 64px"] == pytest.approx(104.0) and len(values) == 8
    assert "32px at 250 samples: FID 72.0, KID 3.20e-3" in floors_text(floors)


def test_reference_is_a_fixed_subset_of_the_training_split():
    spec = {"kind": "shapes", "n": 40, "seed": 0}
    train = reference_sets(spec, [16], n_reference=10, split="train")[16]
    again = reference_sets(spec, [16], n_reference=10, split="train")[16]
    val = reference_sets(spec, [16], n_reference=10, split="val")[16]
    assert len(train) == len(val) == 10
    assert torch.equal(train.images, again.images)  # the same subset for every call (and seed)
    assert not torch.equal(train.images, val.images)
    # the floor at n samples scores n *other* real images of the split against the reference
    whole = shapes_dataset(40, 16, seed=0).images
    other = other_real_images(spec, 16, 25, n_reference=10)
    assert len(other) == 25 and len(other_real_images(spec, 16, 100, n_reference=10)) == 30  # all that is left
    in_reference = {bytes(x.numpy()) for x in train.images}
    assert not any(bytes(x.numpy()) in in_reference for x in other)
    assert {bytes(x.numpy()) for x in other} <= {bytes(x.numpy()) for x in whole}
    with pytest.raises(ValueError, match="split must be one of"):
        reference_sets(spec, [16], split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        Evaluator(spec, 4, 2, 1.0, text_encoder="hash", split="test")
    a = Evaluator(spec, 4, 2, 1.0, text_encoder="hash", split="train")
    b = Evaluator(spec, 4, 2, 1.0, text_encoder="hash", split="val")

    class Run:
        class checkpoint:
            name = "step-1"

    assert a.key(Run) != b.key(Run)  # the split is part of the protocol a stored evaluation answers


def test_a_smaller_protocols_prompts_are_a_random_sample_of_the_reference():
    """An n-sample protocol prompts with the reference's first n captions, so the reference is in a seeded random
    order, not the data set's (emoji3d's own order put 32% flags among the first 256, against 8.5% overall)."""
    half = 60
    images = torch.zeros(2 * half, 3, 4, 4, dtype=torch.uint8)
    data = CaptionedImages(images, ["flag"] * half + ["face"] * half, [])  # sorted by kind, as a data set may be
    for n in (100, 500):  # a subset, and the whole set (fewer items than n)
        subset, _ = _fixed_subset(data, n)
        first = subset.captions[:40]
        assert 10 < first.count("flag") < 30  # ~20 if random; 40 in the data set's order
        assert subset.captions == _fixed_subset(data, n)[0].captions  # the same order at every call

"""Table 1's machinery at toy scale: five models, equal images-seen budget, one evaluation protocol."""

import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ldlib.data import data_spec
from ldlib.evaluation import Evaluator, metrics, reference_sets
from ldlib.reproduction import table1
from ldlib.reproduction.recorder import VERDICTS, Recorder, fmt
from ldlib.reproduction.study import Budget, at_sample_count
from ldlib.reproduction.table1 import evaluate_rows, rows, train_rows


def test_rows_and_flops_order():
    table = rows("paper")
    assert [r.name for r in table] == ["single128", "single256", "layered256", "single512", "layered512"]
    flops = {r.name: r.flops for r in table}
    assert flops["layered256"] < flops["single256"] and flops["layered512"] < flops["single512"]


def test_training_speed_leaves_out_runs_measured_on_a_shared_machine(tmp_path, monkeypatch):
    from types import SimpleNamespace as NS

    from ldlib.runtime import records

    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(records.RECORDS_ENV, str(tmp_path / "records"))
    epyc = {"cpu": "AMD EPYC", "torch_threads": 2, "native_bf16": True, "avx512": True}

    def runs(*speeds, machines=None):
        out = []
        for k, (ips, share) in enumerate(speeds):
            run = NS(images_per_s=ips, cpu_share=share, run_dir=tmp_path / "cache" / "runs" / f"r{k}", step=3)
            records.write(run.run_dir / "step-00000003", "machine.json", (machines or [epyc] * 3)[k])
            out.append(run)
        return out

    row = table1.rows("smoke")[0]
    row.runs = {24: runs((40.9, 0.48), (112.9, 0.99), (110.1, 0.98))}
    rec = Recorder(None, "t")
    table1.record_speeds(rec, {"paper": [row]}, 32)
    m, = rec.metrics
    assert m.key == f"training images/s {row.name}" and m.value == pytest.approx((112.9 + 110.1) / 2)
    on = "AMD EPYC, 2 threads, AVX-512 BF16"
    assert m.note == (f"median of 2 of 3 seeds' runs, batch 32; per seed: 40.9 (CPU share 0.48; shared, left out; "
                      f"{on}), 112.9 (CPU share 0.99; {on}), 110.1 (CPU share 0.98; {on})")
    row.runs = {24: [NS(images_per_s=40.0, cpu_share=0.5, run_dir=tmp_path / "elsewhere", step=3),
                     NS(images_per_s=50.0, cpu_share=None, run_dir=tmp_path / "elsewhere2", step=3)]}
    rec = Recorder(None, "t")
    table1.record_speeds(rec, {"none": [row]}, 8)  # a run with no share recorded (GPU) counts as alone
    assert rec.metrics[0].value == 50.0 and rec.metrics[0].key.endswith("(shifts: none)")
    assert "machine unknown" in rec.metrics[0].note  # neither recorded nor in this cache
    row.runs = {24: runs((40.0, 0.5), (30.0, 0.4))}
    rec = Recorder(None, "t")
    table1.record_speeds(rec, {"paper": [row]}, 8)  # every run shared: the median of all, none marked left out
    assert rec.metrics[0].value == 35.0 and "left out" not in rec.metrics[0].note
    shutil.rmtree(tmp_path / "records")
    row.runs = {24: runs((70.0, 0.99), (38.0, 0.99), machines=[epyc, dict(epyc, native_bf16=False, avx512=False)])}
    rec = Recorder(None, "t")
    table1.record_speeds(rec, {"paper": [row]}, 32)  # seeds trained on different machines: said, loudly
    assert "DIFFERENT MACHINES" in rec.metrics[0].note and "AMD EPYC, 2 threads, AVX2)" in rec.metrics[0].note


def test_train_and_evaluate_toy_table(tmp_path, monkeypatch):
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    data, budget = {"kind": "shapes", "n": 32, "seed": 0}, Budget(24, 8, 1e-3, text_encoder="hash")
    table = train_rows("smoke", data, budget, budgets=[8, 24], seeds=2, progress=False)
    # the same budgets in images seen for every row, one run per seed passing through both
    assert [[r.step for r in row.runs[24]] for row in table] == [[3, 3]] * 5
    assert all(row.runs[8][k].run_dir == row.runs[24][k].run_dir for row in table for k in range(2))
    assert all(row.runs[24][0].run_dir != row.runs[24][1].run_dir for row in table)  # seeds are other runs
    again = train_rows("smoke", data, budget, budgets=[8, 24], seeds=2, progress=False)
    assert [r.runs[24][1].checkpoint for r in again] == [r.runs[24][1].checkpoint for r in table]  # run cache
    spec = data_spec("shapes", data_size=32)
    reference = reference_sets(spec, (16, 32, 64), n_reference=8)
    assert {r: ref.images.shape[-1] for r, ref in reference.items()} == {16: 16, 32: 32, 64: 64}
    evaluator = Evaluator(spec, n_samples=8, steps=2, guidance=2.0, text_encoder="hash", n_reference=8,
                          judge_steps=4, n_boot=4, progress=False)
    curve = Evaluator(spec, n_samples=4, steps=2, guidance=2.0, text_encoder="hash", n_reference=8,
                      judge_steps=0, n_boot=4, progress=False)
    evaluate_rows(table, curve, evaluator)
    judge = evaluator.judge
    assert 0 <= judge.ceiling <= 1 and judge.classifier is not None
    for row in table:
        final, early = row.evaluations[24], row.evaluations[8]
        assert len(final) == len(early) == 2 and early[0].scores.protocol.n_generated == 4
        ev = final[0]
        assert ev.samples.shape[-1] == row.model.resolutions[-1]
        assert ev.scores.fid > 0 and ev.scores.protocol.n_generated == 8
        assert 0 <= ev.alignment <= 1
    # the curve keeps one sample count: the largest budget's point is the curve protocol's own evaluation of that
    # checkpoint, read off the first samples of the final one (the same images: same prompts and batch seeds)
    direct = curve(table[-1].runs[24][1])
    derived = table[-1].curve[24][1]
    assert torch.equal(derived.samples, direct.samples) and derived.scores.protocol.n_generated == 4
    assert derived.scores.fid == pytest.approx(direct.scores.fid, rel=1e-4)
    assert derived.scores.kid_ci == pytest.approx(direct.scores.kid_ci, rel=1e-3, abs=1e-6)
    assert table1.curve_points(table, "fid")["layered64"][24][1] == derived.scores.fid
    assert table[-1].curve[8] == table[-1].evaluations[8]  # the smaller budgets are already at the curve's count
    with pytest.raises(ValueError, match="not the first ones"):  # another sampler draws other images
        at_sample_count(table[-1].evaluations[24][1], curve.with_sampler("ddpm", 2))
    # a second evaluation of the same run with the same protocol is read back from the run's folder
    first = table[0].evaluations[24][0]
    again = evaluator(table[0].runs[24][0])
    assert again.scores.fid == first.scores.fid and torch.equal(again.samples, first.samples)
    # the generated set's features are stored with it: scoring it again needs neither sampling nor Inception
    assert again.features.pool3.shape == (8, 2048) and again.features.logits.shape == (8, 1000)
    rescored = metrics.scores(evaluator.features(16), again.features, again.scores.protocol, n_boot=4, seed=0)
    assert rescored.fid == pytest.approx(again.scores.fid) and rescored.kid == pytest.approx(again.scores.kid)
    # the reference's features are stored in the cache: a new evaluator (another notebook) reads them back
    assert len(list((tmp_path / "features").glob("pool3-*.safetensors"))) == 3  # 16, 32 and 64 px
    monkeypatch.setattr(metrics, "extract", lambda *a, **k: pytest.fail("Inception ran again"))
    other = Evaluator(spec, n_samples=8, steps=2, guidance=2.0, text_encoder="hash", n_reference=8, judge_steps=4,
                      n_boot=4, progress=False)
    assert (other.features(64) == evaluator.features(64)).all()
    rec = Recorder(None, "t")
    table1.record_table1(rec, table, "smoke", "paper", judge)
    assert len(rec.claims) == 4 and all(c.agrees in (True, False, None) for c in rec.claims)
    assert all("(2 seeds; paired" in c.we_find for c in rec.claims)
    curves = {m.key for m in rec.metrics if m.key.startswith("FID layered")}
    assert {"FID layered32 - single32 at 8 images", "FID layered64 - single64 at 24 images"} <= curves
    # KID and text alignment, which no claim of the paper's covers, are paired at the largest budget too
    recorded = {m.key: m for m in rec.metrics}
    for key in ("KID layered32 - single32 at 24 images", "alignment layered64 - single64 at 24 images"):
        assert recorded[key].ci[0] <= recorded[key].value <= recorded[key].ci[1]
        assert recorded[key].note.startswith("paired across 2 seeds")
    # one seed: the differences' notes say that their interval leaves the seeds' spread out
    solo = Recorder(None, "t")
    table1.record_table1(solo, [replace(r, evaluations={k: v[:1] for k, v in r.evaluations.items()}) for r in table],
                         "smoke", "paper")
    assert {m.key: m for m in solo.metrics}["FID layered64 - single64 at 24 images"].note.startswith(
        "1 seed, paired: its interval is the sample bootstrap's alone")
    a = [e.alignment for e in table[4].evaluations[24]]
    b = [e.alignment for e in table[3].evaluations[24]]
    assert recorded["alignment layered64 - single64 at 24 images"].value == pytest.approx((sum(a) - sum(b)) / 2)
    # a subset of the rows (ldlib pretrain --rows) keeps each row's own paper counterpart, not its position
    pairs = table1.pairs([table[1], table[2], table[4]])  # layered64 has no single64 here
    assert [(a.name, b.name) for a, b in pairs] == [("layered32", "single32")]
    sub = Recorder(None, "t")
    table1.record_table1(sub, [table[1], table[2]], "smoke", "paper")
    assert [c.paper_says.split(" (")[0] for c in sub.claims] == ["layered256 FID 13.38 vs single256 14.61",
                                                                 "layered256 IS 29.62 vs single256 28.61"]
    assert "| single32 |" in table1.table_markdown([table[1]]) and "*single256*" in table1.table_markdown([table[1]])
    text = table1.table_markdown(table)
    assert text.count("\n") == 6 and "*layered512*" in text  # header, rule, five rows; paper rows labelled
    points = table1.curve_points(table, "fid")
    assert list(points["layered64"]) == [8, 24] and len(points["layered64"][24]) == 2
    # each seed's own difference, the spread the across-seed interval is built from; their mean is its centre
    per_seed = table1.curve_seed_differences(table, "fid")["layered64 - single64"]
    assert per_seed[24] == pytest.approx([a.scores.fid - b.scores.fid
                                          for a, b in zip(table[4].evaluations[24], table[3].evaluations[24])])
    centre = table1.curve_differences(table, "fid")["layered64 - single64"]
    assert list(per_seed) == list(centre) == [8, 24]
    assert all(np.mean(per_seed[b]) == pytest.approx(centre[b][0], rel=1e-3) for b in (8, 24))
    # the ordering along the budget, written from those intervals: each budget's side, grouped
    text = table1.ordering_text(table)
    d, ci = centre[24]
    side = "interval spans 0" if ci[0] <= 0 <= ci[1] else "layered better" if ci[1] < 0 else "single better"
    assert f"FID layered64 - single64 along the budget: 8 images " in text and f"24 images {fmt(d)} " in text
    assert f"{side} at " in text and "alignment layered64 - single64 at 24 images" in text
    # the curve's numbers: every model at every budget, the seeds' mean at the curve's count and their range
    shown = table1.record_curve(sub, table, "none")
    point = {m.key: m for m in sub.metrics}["FID layered64 (shifts: none) at 24 images, 4 samples"]
    assert point.value == pytest.approx(np.mean(points["layered64"][24])) and point.ci[0] < point.value < point.ci[1]
    assert f"seeds {min(points['layered64'][24]):.4g}-{max(points['layered64'][24]):.4g}" in point.note
    assert shown.count("\n") == 6 and "FID at 8 images" in shown and f"| {fmt(point.value)} |" in shown


def test_schedule_rules_shift_single_and_layered_rows_alike():
    layered, single = (next(r.model for r in rows("cpu16") if r.name == n) for n in ("layered64", "single64"))
    paper = table1.diffusion_for(single, 16, "paper"), table1.diffusion_for(layered, 16, "paper")
    assert paper[0].shifts[-1] == paper[1].shifts[-1] == pytest.approx(math.log(1 / 32))  # 64 px is 4x the base
    assert table1.diffusion_for(layered, 16, "none").shifts == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="rule must be one of"):
        table1.diffusion_for(single, 16, "simple")


def test_a_rule_that_changes_no_schedule_names_the_same_run():
    """single16 is the base resolution alone: unshifted under both rules, so both rules' rows are one run
    (trained and scored once); every other row's unshifted run is its own."""
    budget = Budget(images=64, batch_size=8, lr=1e-3)
    for row in rows("cpu16"):
        paper, none = (table1.row_request("cpu16", row, budget, rule) for rule in ("paper", "none"))
        assert (paper[0] == none[0]) == (row.name == "single16") == (paper[2] == none[2])
        assert none[0] == f"cpu16-{row.name}" + ("" if row.name == "single16" else "-none")


def test_data_spec_needs_a_folder_for_coco():
    assert data_spec("emoji3d") == {"kind": "emoji3d", "split": "train"}
    with pytest.raises(ValueError, match="data_root"):
        data_spec("coco")



def test_pretrain_evaluates_with_the_notebooks_protocol(tmp_path, monkeypatch, capsys):
    """``ldlib pretrain --evaluate`` stores each run's evaluation under the key notebook 05 asks for, so the
    notebook reads it back instead of sampling again, and prints what the notebook will conclude from them."""
    from ldlib import cli
    from ldlib.reproduction.parameters import NOTEBOOKS

    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    monkeypatch.setenv("LDLIB_RECORDS", str(tmp_path / "records"))  # what a campaign sets (ldlib.runtime.records)
    asked = table1.trained_model

    def trained_model(name, *args, **kwargs):  # says when each run is asked for (trained, or read back)
        print(f"run asked for: {name}")
        return asked(name, *args, **kwargs)

    monkeypatch.setattr(table1, "trained_model", trained_model)
    small = dict(seeds=1, curve_images=[], budget_images=8, batch_size=8, data_size=32, n_reference=8, n_samples=4,
                 sample_steps=2, judge_steps=2, n_boot=4, text_encoder="hash")
    argv = ["pretrain", "--profile", "smoke", "--rows", "single32", "layered32", "--rules", "paper", "--evaluate",
            "--quiet"]
    argv += [a for k, v in small.items() for a in ("-p", f"{k}={v!r}")]
    plan = [a for a in argv if a not in ("--evaluate", "--quiet")] + ["--plan"]
    assert cli.main(plan) == 0  # before: nothing trained, nothing scored, no speed to price the work with
    before = capsys.readouterr().out
    assert "| paper | single32 | 0 | 0 / 8 | — | ? | 0 / 2 |" in before and "no run measured yet to price it" in before
    assert "none stored yet to price them" in before and "Done:" not in before
    assert not list(tmp_path.glob("runs/*"))  # the plan trains nothing
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert cli.main(plan) == 0
    after = capsys.readouterr().out
    assert "| paper | layered32 | 0 | 8 / 8 |" in after and "| 0 | 2 / 2 |" in after
    assert "Training left: 0 images" in after and "Evaluations left: 0 (0 images to generate)" in after
    # 2 x (4 train-reference + 16 held-out); one step per run is too short to time, so not priced
    assert "Done: 16 images trained and 40 generated (4 evaluations); not priced: no measured speed" in after
    assert "paper single32 8 images: FID" in first and "paper single32 held-out images: FID" in first
    # the interim read-out: Table 1, the paired differences and the claims with their verdicts, as the notebook's
    assert "## Schedule rule: paper" in first and "| layered32 |" in first
    assert "FID layered32 - single32 at 8 images" in first and "layered32 - single32, held-out concepts" in first
    claims = [line for line in first.splitlines() if line.startswith("| layered beats single on")]
    assert len(claims) == 2 and all(line.split("|")[-2].strip().split()[0] in VERDICTS for line in claims)
    assert "Along the budget: FID layered32 - single32 along the budget: 8 images " in first
    p = NOTEBOOKS["05_table1"].parameters("smoke", small)
    protocols = table1.evaluators(data_spec(p["dataset"], seed=0, data_size=32), p)
    table = train_rows(p["preset"], data_spec(p["dataset"], seed=0, data_size=32),
                       Budget(8, 8, p["lr"], 0, "hash"), [8], 1, "paper", progress=False, only=("single32",))
    run = table[0].runs[8][0]
    for protocol in (protocols.final, protocols.heldout):
        assert (protocol.folder(run) / "scores.json").exists()
    # the console names each run before it is scored (the sampler's bar does not), then says it is stored
    assert "evaluating: single32 seed 0 at 8 images, 4 samples against the train reference" in first
    assert "evaluating: layered32 seed 0 at 8 images, 16 samples against the val reference" in first
    # each run scored as soon as it is trained (its records land before the next run trains): single32's
    # evaluations, the held-out one too, come before layered32 is asked for
    assert (first.index("evaluating: single32 seed 0 at 8 images, 16 samples against the val reference")
            < first.index("run asked for: smoke-layered32") < first.index("evaluating: layered32 seed 0"))
    assert cli.main(argv) == 0
    again = capsys.readouterr().out
    assert "evaluating:" not in again and again.count("stored: ") == first.count("evaluating: ") == 4
    # each layered run probed while its weights are here (``ldlib.evaluation.reliance``): notebook 05 never trains it
    # again; a single row has no lower level to read
    assert re.search(r"^probed: smoke-layered32-\w+ \(the noise-free part", first, re.M)
    assert "probed: smoke-single" not in first
    progress = ("evaluating: ", "stored: ", "run asked", "probed: ")
    numbers = [[line for line in out.splitlines() if not line.startswith(progress)] for out in (first, again)]
    assert numbers[0] == numbers[1]  # read back, same numbers
    # a machine whose run cache is empty reads the records: nothing to train or score, the same read-out
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path / "fresh"))
    assert cli.main(plan) == 0
    fresh_plan = capsys.readouterr().out
    assert "| paper | layered32 | 0 | 8 / 8 |" in fresh_plan and "Training left: 0 images" in fresh_plan
    assert cli.main(argv) == 0
    fresh = capsys.readouterr().out
    assert "evaluating:" not in fresh and not list((tmp_path / "fresh").glob("runs/*/step-*"))
    same = [[line for line in lines if "/runs/" not in line] for lines in (numbers[0], fresh.splitlines())]
    read_back = [line for line in same[1] if not line.startswith(("stored: ", "run asked"))]
    assert same[0] == read_back  # checkpoint paths aside


def test_the_plan_prices_a_shared_segment_as_if_alone():
    from ldlib.reproduction.plan import alone_speed

    assert alone_speed((30.0, 0.5)) == 60.0  # paused or beside other work half the time
    assert alone_speed((30.0, 0.95)) == 30.0 and alone_speed((30.0, None)) == 30.0  # alone; a GPU records no share


def test_the_plan_prices_a_row_never_measured_from_its_flops(tmp_path):
    from ldlib.reproduction.plan import PlannedRun, plan_markdown, row_speeds

    def planned(row, flops, measured, reached=0):
        return PlannedRun("paper", row, 32, 0, tmp_path / row, flops, reached, 1000, measured, 0, 0, 0)

    runs = [planned("a", 100, (10.0, 0.99), 1000), planned("b", 200, (4.0, 0.5), 1000), planned("c", 400, None)]
    speeds, estimated = row_speeds(runs)
    # images/s x FLOPs per image: a 1000, b 1600 (8 images/s alone); median 1300, so c (400 FLOPs) 3.25
    assert speeds == pytest.approx({"a": 10.0, "b": 8.0, "c": 3.25}) and estimated == {"c"}
    text = plan_markdown(runs)
    assert "| paper | c | 0 | 0 / 1,000 | — | 5 min (est.) |" in text and "estimated from FLOPs per image: c" in text
    # what is done, priced alike (a 100 s + b 125 s), and the whole: 225 s + c's 308 s
    assert "Done: 2,000 images trained and 0 generated (0 evaluations), about 4 min at the same speeds; done and " \
           "left together, about 9 min of compute" in text
    assert row_speeds([planned("c", 400, None)]) == ({}, set())  # nothing measured: nothing to scale


def test_ordering_text_groups_budgets_by_the_side_their_interval_puts_ahead(monkeypatch):
    curve = {12800: (-16.7, (-26.1, -7.4)), 51200: (-0.9, (-13.4, 11.5)), 102400: (1.4, (-19.4, 22.2))}
    monkeypatch.setattr(table1, "curve_differences", lambda table, metric: {"layered32 - single32": curve})
    monkeypatch.setattr(table1, "final_differences", lambda table: [
        ("alignment layered32 - single32", (-0.084, (-0.131, -0.037)), 102400),
        ("KID layered32 - single32", (0.03, (0.01, 0.05)), 102400)])
    text = table1.ordering_text([])
    assert text.startswith("FID layered32 - single32 along the budget: 12,800 images -16.7 [-26.1, -7.4], ")
    assert text.endswith("(layered better at 12,800 images; interval spans 0 at 51,200 and 102,400 images); "
                         "alignment layered32 - single32 at 102,400 images -0.084 [-0.131, -0.037] (single better); "
                         "KID layered32 - single32 at 102,400 images 0.03 [0.01, 0.05] (single better)")


def test_noise_reliance_is_recorded_per_layered_row_against_its_single_row():
    # two seeds; rows: t x [as trained, lower noise independent]; the single row enters by its training loss only
    layered = [np.array([[1.0, 4.0], [1.0, 2.0]]), np.array([[2.0, 4.0], [2.0, 6.0]])]
    found = {"layered32": table1.Reliance("single32", 102400, layered, [0.5, 1.0])}
    rec = Recorder(None, "t")
    text = table1.record_noise_reliance(rec, found, "none")
    vs, own = rec.metrics
    assert vs.key == "top-level training loss, layered32 / single32 (shifts: none)"
    assert vs.value == pytest.approx((0.5 + 1.0) / 2) and vs.ci[0] < 0.5 and vs.ci[1] > 1.0
    assert own.key == "top-level error, lower noise independent / as trained, layered32 (shifts: none)"
    assert own.value == pytest.approx((3.0 + 2.5) / 2) and "2 training seeds at 102,400 images" in own.note
    assert text.startswith("layered32 (shifts: none): top-level training loss 0.75x single32's [")
    assert "top-level error 2.75x as trained [" in text


def test_the_top_level_loss_is_the_last_eighth_of_the_top_levels_training_loss():
    from ldlib.training import TrainResult

    run = TrainResult(Path("r"), 16, level_losses=[[9.0, float(k)] for k in range(16)])
    assert table1.top_level_loss(run) == pytest.approx((14 + 15) / 2)  # steps 14 and 15, the top level only
    assert table1.top_level_loss(TrainResult(Path("r"), 1, level_losses=[[1.0, 2.0]])) == 2.0
    with pytest.raises(ValueError, match="no recorded losses"):
        table1.top_level_loss(TrainResult(Path("r"), 0))


def test_seed_interval_is_students_t_across_seeds_and_none_for_one_seed():
    from scipy import stats

    from ldlib.reproduction.recorder import seed_interval

    assert seed_interval([2.0]) == (2.0, None)
    mean, (lo, hi) = seed_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    with pytest.raises(ValueError, match="one value per training seed"):
        seed_interval([])


def test_precision_and_recall_carry_an_interval_across_seeds_and_a_paired_difference(monkeypatch):
    from statistics import mean, stdev
    from types import SimpleNamespace as NS

    from scipy import stats

    def ev(precision, recall):
        scores = NS(fid=80.0, fid_ci=(79.0, 81.0), kid=0.03, kid_ci=(0.02, 0.04), inception_score=2.5,
                    is_ci=(2.4, 2.6), precision=precision, recall=recall)
        return NS(scores=scores, alignment=None, alignment_ci=None)

    single, layered = table1.rows("smoke")[1:3]
    assert (single.name, layered.name) == ("single32", "layered32")
    single.evaluations = {24: [ev(0.42, 0.15), ev(0.43, 0.14), ev(0.41, 0.15)]}
    layered.evaluations = {24: [ev(0.46, 0.05), ev(0.47, 0.04), ev(0.46, 0.06)]}
    monkeypatch.setattr(table1, "paired_difference", lambda a, b, metric: (0.01, (0.0, 0.02), len(a)))
    found = {name: ci_ for name, ci_, _ in table1.final_differences([single, layered])}
    assert set(found) == {"KID layered32 - single32", "precision layered32 - single32", "recall layered32 - single32"}
    diffs = [0.05 - 0.15, 0.04 - 0.14, 0.06 - 0.15]  # paired by seed index
    half = stats.t.ppf(0.975, 2) * stdev(diffs) / 3 ** 0.5
    d, ci = found["recall layered32 - single32"]
    assert d == pytest.approx(mean(diffs)) and ci == pytest.approx((mean(diffs) - half, mean(diffs) + half))
    head, rule, row = table1.table_markdown([layered]).splitlines()
    assert head.count("|") == rule.count("|") == row.count("|") == 20
    cells = dict(zip([c.strip() for c in head.split("|")][1:], [c.strip() for c in row.split("|")][1:]))
    assert cells["precision"] == "0.463" and cells["recall"] == "0.050"
    text = table1.ordering_text([single, layered])
    assert f"recall layered32 - single32 at 24 images {fmt(mean(diffs))} [" in text and text.endswith("(single better)")
    assert "precision layered32 - single32 at 24 images 0.04333 [" in text and "(layered better); recall" in text
    # one seed: the seeds' spread is unmeasured, so neither an interval nor a paired difference
    single.evaluations, layered.evaluations = {24: single.evaluations[24][:1]}, {24: layered.evaluations[24][:1]}
    assert [name for name, _, _ in table1.final_differences([single, layered])] == ["KID layered32 - single32"]
    assert "| 0.460 | — |" in table1.table_markdown([layered])

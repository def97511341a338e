"""Table 1's machinery at toy scale: five models, equal images-seen budget, one evaluation protocol."""

import pytest
import torch

from ldlib.data import data_spec
from ldlib.evaluation import Evaluator, metrics, reference_sets
from ldlib.reproduction import table1
from ldlib.reproduction.recorder import Recorder
from ldlib.reproduction.table1 import evaluate_rows, rows, train_rows


def test_rows_and_flops_order():
    table = rows("paper")
    assert [r.name for r in table] == ["single128", "single256", "layered256", "single512", "layered512"]
    flops = {r.name: r.flops for r in table}
    assert flops["layered256"] < flops["single256"] and flops["layered512"] < flops["single512"]


def test_train_and_evaluate_toy_table(tmp_path, monkeypatch):
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    table = train_rows("smoke", {"kind": "shapes", "n": 32, "seed": 0}, budget_images=24, batch_size=8, lr=1e-3,
                       text_encoder="hash", progress=False)
    assert [r.run.step for r in table] == [3] * 5  # the same budget in images seen for every row
    again = train_rows("smoke", {"kind": "shapes", "n": 32, "seed": 0}, budget_images=24, batch_size=8, lr=1e-3,
                       text_encoder="hash", progress=False)
    assert [r.run.checkpoint for r in again] == [r.run.checkpoint for r in table]  # reused from the run cache
    spec = data_spec("shapes", data_size=32)
    reference = reference_sets(spec, (16, 32, 64), n_reference=8)
    assert {r: ref.images.shape[-1] for r, ref in reference.items()} == {16: 16, 32: 32, 64: 64}
    evaluator = Evaluator(spec, n_samples=8, steps=2, guidance=2.0, text_encoder="hash", n_reference=8,
                          judge_steps=4, n_boot=4, progress=False)
    evaluate_rows(table, evaluator)
    judge = evaluator.judge
    assert 0 <= judge.ceiling <= 1 and judge.classifier is not None
    for row in table:
        ev = row.evaluation
        assert ev.samples.shape[-1] == row.model.resolutions[-1]
        assert ev.scores.fid > 0 and ev.scores.protocol.n_generated == 8
        assert 0 <= ev.alignment <= 1
    # a second evaluation of the same run with the same protocol is read back from the run's folder
    again = evaluator(table[0].run)
    assert again.scores.fid == table[0].evaluation.scores.fid and torch.equal(again.samples, table[0].evaluation.samples)
    assert len(list(table[0].run.run_dir.glob("eval-*/scores.json"))) == 1
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
    table1.record_table1(rec, table, "smoke", judge)
    assert len(rec.claims) == 4 and all(c.agrees in (True, False, None) for c in rec.claims)
    text = table1.table_markdown(table)
    assert text.count("\n") == 6 and "*layered512*" in text  # header, rule, five rows; paper rows labelled


def test_data_spec_needs_a_folder_for_coco():
    assert data_spec("emoji3d") == {"kind": "emoji3d", "split": "train"}
    with pytest.raises(ValueError, match="data_root"):
        data_spec("coco")


"""Table 1's machinery at toy scale: five models, equal images-seen budget, one evaluation protocol."""

from ldlib.data import shapes_dataset
from ldlib.table1 import evaluate_rows, rows, train_rows


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
    evaluate_rows(table, shapes_dataset(8, 64, seed=5), n_samples=8, steps=2, guidance=2.0, text_encoder="hash",
                  progress=False)
    for row in table:
        ev = row.evaluation
        assert ev.samples.shape[-1] == row.model.resolutions[-1]
        assert ev.scores.fid > 0 and ev.scores.protocol.n_generated == 8

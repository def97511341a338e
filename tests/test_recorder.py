import json

import matplotlib.pyplot as plt
import pytest

from ldlib.reproduction.recorder import DIFFERS, MATCHES, NO_PAPER, Metric, Recorder


def test_metric_verdicts():
    assert Metric("a", 1.0).verdict == NO_PAPER
    assert Metric("a", 1.0, ci=(0.9, 1.1), paper=1.05).verdict == MATCHES
    assert Metric("a", 1.0, ci=(0.9, 1.1), paper=1.2).verdict == DIFFERS
    assert Metric("a", 1.0, paper=1.02, tolerance=0.05).verdict == MATCHES
    assert Metric("a", 1.0, paper=1.02).verdict == DIFFERS


def test_recorder_writes_metrics_and_figures(tmp_path):
    rec = Recorder(tmp_path / "out", "nb")
    rec.metric("x", 2.0, paper=2.0, tolerance=0)
    rec.claim("c", "paper", "we", True)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    assert rec.figure(fig, "line").exists()
    data = json.loads(rec.save().read_text())
    assert data["figures"] == ["line.png"] and data["metrics"][0]["verdict"] == MATCHES
    with pytest.raises(ValueError, match="twice"):
        rec.metric("x", 1.0)
    with pytest.raises(ValueError, match="not finite"):
        rec.metric("nan", float("nan"))


def test_recorder_without_output_dir_saves_nothing():
    rec = Recorder("", "nb")
    rec.metric("x", 1.0)
    assert rec.save() is None


def test_tables_escape_pipes():
    from ldlib.reproduction.recorder import claims_table, metrics_table

    table = metrics_table([{"key": "a|b", "value": 1.0, "verdict": NO_PAPER, "note": "|x|"}])
    assert table.splitlines()[-1].count(" | ") == 5
    row = claims_table([{"key": "k", "paper_says": "p", "we_find": "|w|", "agrees": True}]).splitlines()[-1]
    assert row.count(" | ") == 4  # claim, kind, paper, we find, verdict


def test_unresolved_claims_and_interval_order():
    from ldlib.evaluation import ordered
    from ldlib.reproduction.recorder import Recorder, claims_table

    assert ordered((0, 1), (2, 3)) == -1 and ordered((2, 3), (0, 1)) == 1 and ordered((0, 2), (1, 3)) == 0
    rec = Recorder(None, "t")
    c = rec.claim("k", "p", "w", None)
    assert c.verdict == "unresolved" and c.agrees is None
    assert claims_table([{"key": "k", "paper_says": "p", "we_find": "w", "agrees": None}]).endswith("| unresolved |")

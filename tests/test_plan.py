"""``ldlib reproduce --plan``: the runs and evaluations every notebook asks for, found without training, each once."""

import re

from ldlib import cli
from ldlib.reproduction import model_stacking
from ldlib.config import get_preset
from ldlib.reproduction.plan import notebooks_plan
from ldlib.reproduction.runner import plan
from ldlib.reproduction.study import Study

#: a smoke profile small enough to train notebook 04 for real in seconds
TINY = dict(seeds=1, budget_images=8, batch_size=8, data_size=32, n_reference=8, n_samples=4, sample_steps=2,
            judge_steps=2, n_boot=4, text_encoder="hash")


def _overrides(**extra):
    return [f"{k}={v!r}" for k, v in {**TINY, **extra}.items()]


def test_the_plan_lists_every_notebooks_runs_once_and_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    planned, notes = notebooks_plan(plan("smoke", overrides=_overrides(curve_images=[])))
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing scored
    keys = [p.run_dir.name.rsplit("-", 1)[-1] for p in planned]
    assert len(keys) == len(set(keys))  # a run two notebooks share is listed once
    groups = {p.rule.split()[0] for p in planned}
    assert groups == {"01", "02", "03", "04", "05"} and planned[0].rule.startswith("05")  # Table 1 first
    # Table 1's layered models are the ablations' too: the sinc arm (01), the full runs (03), random models (04)
    shared = {p.row: p.label for p in planned if p.rule == "05 paper" and p.row.startswith("layered")}
    assert "01" in shared["layered64"] and "03" in shared["layered64"] and "04" in shared["layered32"]
    assert {p.label for p in planned if p.rule == "01"} == {"bilinear noise", "independent noise"}
    assert any(n.startswith("02:") for n in notes) and any(n.startswith("03:") for n in notes)  # what it assumed


def test_the_plan_finds_what_a_notebook_trained_and_scored(tmp_path, monkeypatch, capsys):
    """The planned runs and evaluations are the very ones notebook 04's library call trains and scores: once they
    are done, the plan has nothing left (a planned key that differed would stay 'not stored')."""
    monkeypatch.setenv("LDLIB_CACHE", str(tmp_path))
    argv = ["reproduce", "--profile", "smoke", "--plan", "--only", "04", *[a for o in _overrides() for a in ("-p", o)]]
    assert cli.main(argv) == 0
    before = capsys.readouterr().out
    assert "| 04 | layered32 (stacked) | 0 | 0 / 8 |" in before and "Evaluations left: 7 " in before
    assert len(re.findall(r"^\| 04 \|", before, re.M)) == 6  # base, random and stacked at 2 and 3 resolutions
    assert not (tmp_path / "runs").exists()
    (_, p), = plan("smoke", only=["04"], overrides=_overrides())
    study = Study.from_params(p, progress=False)
    evals, _ = model_stacking.trained_arms(study, get_preset(p["preset"]).resolutions)
    assert len(evals) == 7
    assert cli.main(argv) == 0
    after = capsys.readouterr().out
    assert "Training left: 0 images" in after and "Evaluations left: 0 (0 images to generate)" in after
    assert "| 04 | layered64 (stacked-b) | 0 | 8 / 8 |" in after

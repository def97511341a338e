"""`ldlib reproduce`: validation before work, result folders, failures, no silent overwrite."""

import ast
import json
import time
from pathlib import Path

import nbformat
import pytest

from ldlib import cli
from ldlib.reproduction.parameters import NOTEBOOKS, PROFILES, NotebookSpec, Param, ParameterError
from ldlib.reproduction.runner import plan, reproduce

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def parameters_cell(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(cells[0].source).body
        if isinstance(node, ast.Assign)
    }


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_parameters_match_declaration(name):
    spec = NOTEBOOKS[name]
    cell = parameters_cell(NB_DIR / spec.filename)
    assert set(cell) == set(spec.all_params())
    # The notebook's own defaults are the default profile's values, so interactive use matches `reproduce`.
    expected = spec.parameters("default")
    assert {k: v for k, v in cell.items() if k not in ("output_dir",)} == {
        k: v for k, v in expected.items() if k != "output_dir"
    }
    for profile in PROFILES:
        spec.parameters(profile)  # every profile's values are valid


def test_committed_notebooks_have_no_outputs():
    for path in NB_DIR.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(profile="fast"), "unknown profile 'fast'; choose one of smoke, quick, default, paper"),
        (dict(profile="smoke", only=["99"]), "matches none"),
        (dict(profile="smoke", only=["0"]), "matches several"),
        (dict(profile="smoke", overrides=["n_feilds=3"]), "unknown parameter 'n_feilds'.*n_fields"),
        (dict(profile="smoke", overrides=["n_fields=-3"]), "'n_fields' must be an integer in \\[8, 100000\\]; got -3"),
        (dict(profile="smoke", overrides=["kinds=['sinc', 'box']"]), "'kinds' must be a list of items each one of sinc"),
        (dict(profile="smoke", overrides=["factors=[3]"]), "'factors' must be a list of items each one of 2, 4, 8, 16"),
        (dict(profile="smoke", overrides=["top_resolution=72", "factors=[16]"]), "16 does not divide top_resolution=72"),
        (dict(profile="smoke", overrides=["resolutions=[32, 96]"]), "base times 1, 2 and/or 4"),
        (dict(profile="smoke", overrides=["01_noise_scaling.resolutions=[8]"]), "unknown parameter 'resolutions' for notebook 01"),
        (dict(profile="smoke", overrides=["seed"]), "NAME=VALUE"),
        (dict(profile="smoke", overrides=["03_x.seed=1"]), "not selected"),
        (dict(profile="default", only=["05"], overrides=["rows=['single128']"]),
         "'rows' of preset 'cpu16' are single16, single32, layered32, single64, layered64"),
    ],
)
def test_plan_rejects_bad_input(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        plan(**kwargs)


def test_plan_applies_overrides_per_notebook():
    jobs = dict((s.name, p) for s, p in plan("smoke", overrides=["seed=7", "02_schedule_shifting.n_t=5"]))
    assert jobs["01_noise_scaling"]["seed"] == 7 and jobs["02_schedule_shifting"]["seed"] == 7
    assert jobs["02_schedule_shifting"]["n_t"] == 5
    assert [s.name for s, _ in plan("smoke", only=["02"])] == ["02_schedule_shifting"]
    # Table 1 on a subset of its rows (one pair), e.g. to look at one resolution before the others are trained
    (_, p05), = plan("default", only=["05"], overrides=["rows=['single32', 'layered32']"])
    assert p05["rows"] == ["single32", "layered32"] and plan("default", only=["05"])[0][1]["rows"] == []


def test_cli_fails_before_any_work(tmp_path, capsys):
    rc = cli.main(["reproduce", "--profile", "smoke", "--results", str(tmp_path), "-p", "n_fields=0"])
    assert rc == 2
    assert "'n_fields' must be an integer" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--profile", "huge"])


# A throw-away notebook that fails on request, to exercise the runner's bookkeeping.
TOY = NotebookSpec(
    name="toy",
    title="toy notebook",
    params={"fail": Param("int", "1 = raise", choices=(0, 1)), "value": Param("float", "metric")},
    profiles={p: {"fail": 0, "value": 1.0} for p in PROFILES},
)


def write_toy(folder: Path) -> None:
    params = nbformat.v4.new_code_cell('profile = "smoke"\noutput_dir = ""\nseed = 0\nfail = 0\nvalue = 1.0')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from ldlib.reproduction.recorder import Recorder\n"
        "rec = Recorder(output_dir, 'toy')\n"
        "rec.metric('value', value, paper=1.0, tolerance=0.01)\n"
        "rec.save()\n"
        "assert not fail, 'asked to fail'\n"
    )
    nbformat.write(nbformat.v4.new_notebook(cells=[params, body]), folder / "toy.ipynb")


def test_failure_keeps_partial_copy_and_earlier_results(tmp_path):
    nbs, res = tmp_path / "nbs", tmp_path / "results"
    nbs.mkdir()
    write_toy(nbs)
    run = dict(results_dir=res, notebooks_dir=nbs, registry={"toy": TOY}, progress=False, log=lambda m: None)

    [ok] = reproduce("smoke", **run)
    assert ok.ok
    first = json.loads((res / "smoke/toy/provenance.json").read_text())
    assert first["status"] == "ok" and first["parameters"]["fail"] == 0
    assert set(first) >= {"git", "versions", "device", "seeds", "wall_time_s", "longest_wall_time_s", "parameters"}
    assert json.loads((res / "smoke/toy/metrics.json").read_text())["metrics"][0]["verdict"] == "matches"

    [bad] = reproduce("smoke", overrides=["fail=1", "value=2.0"], **run)
    assert not bad.ok and "asked to fail" in bad.error
    failed = res / "smoke/toy.failed"
    assert (failed / "toy.ipynb").exists() and json.loads((failed / "provenance.json").read_text())["status"] == "failed"
    # the earlier successful result is untouched
    assert json.loads((res / "smoke/toy/provenance.json").read_text()) == first
    summary = (res / "smoke/summary.md").read_text()
    assert "last run failed" in summary and "older results shown" in summary

    [again] = reproduce("smoke", overrides=["value=2.0"], **run)
    assert again.ok and not failed.exists()
    assert json.loads((res / "smoke/.previous/toy/provenance.json").read_text()) == first
    metric = json.loads((res / "smoke/toy/metrics.json").read_text())["metrics"][0]
    assert metric["value"] == 2.0 and metric["verdict"] == "differs"
    assert "| value | 2 |" in (res / "smoke/summary.md").read_text()


def test_progress_lines_and_etas(tmp_path, monkeypatch):
    from ldlib.reproduction.runner import Watcher
    from ldlib.runtime import progress

    path = tmp_path / "p.jsonl"
    progress.report("training", "run-a", 1, 4)  # no LDLIB_PROGRESS: nothing is written anywhere
    monkeypatch.setenv(progress.PROGRESS_ENV, str(path))
    progress.report("training", "run-b", 1, 4, images_per_s=12.5)
    progress.report("training", "run-b", 2, 4)  # within the interval: throttled
    progress.report("training", "run-b", 4, 4)  # the last is always written
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and progress.latest(path)["done"] == 4
    assert progress.describe(json.loads(lines[0])) == "training run-b: step 1/4 (25%), 12.5 images/s"
    assert [progress.duration(s) for s in (42, 480, 4800)] == ["42 s", "8 min", "1 h 20 min"]
    line = Watcher("nb", path, expected_s=600.0, after_s=1200.0, log=print).line()
    assert line.startswith("[nb] 0 s in: training run-b: step 4/4 (100%)") and "suite ETA 30 min" in line
    assert "suite ETA unknown" in Watcher("nb", tmp_path / "none", None, 0.0, log=print).line()


def test_a_task_that_runs_again_gets_the_eta_of_its_own_pass(tmp_path):
    """Inception features run once per evaluation under one name: the second pass's ETA is its own pace (16
    batches in 2 minutes), not that of both passes and the sampling between them (found in the default campaign:
    'batch 6/16, ETA 1 h 4 min' two minutes before the pass ended)."""
    from ldlib.reproduction.runner import Watcher, pass_eta, recent_updates

    now = time.time()
    def up(t, task, name, done, total=16):
        return {"time": now - 3600 + t, "task": task, "name": name, "done": done, "total": total, "eta_s": None}
    first = [up(5 * k, "features", "InceptionFeatures", k) for k in range(1, 17)]  # 80 s
    between = [up(100 + 30 * k, "sampling", "run-a", k, 32) for k in range(1, 33)]  # 16 min
    second = [up(1200 + 7.5 * k, "features", "InceptionFeatures", k) for k in range(1, 7)]  # 7.5 s per batch
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(u) + "\n" for u in first + between + second))
    updates = recent_updates(path)
    assert updates[-1]["done"] == 6 and pass_eta(updates) == pytest.approx(10 * 7.5)
    assert pass_eta(updates[:-6]) == 0.0  # the sampling pass had finished
    assert pass_eta(first[:1]) is None and pass_eta([]) is None  # one point gives no pace
    assert pass_eta(first + second[:1]) is None  # a new pass's first update: no pace yet, not the old pass's
    assert "batch 6/16 (38%), ETA 75 s" in Watcher("nb", path, None, None, log=print).line()
    path.write_text('{"time": 1, "task": "features"' + "\n" + "".join(json.dumps(u) + "\n" for u in second))
    assert len(recent_updates(path)) == 6  # a half-written line is skipped
    assert recent_updates(tmp_path / "none") == []


def test_the_eta_remembers_the_longest_run_with_the_same_parameters(tmp_path):
    """A re-run from a warm run cache is short; the next fresh run's ETA must not shrink to it."""
    from ldlib.reproduction.runner import expected_seconds, longest_wall_time

    params = {"profile": "quick", "seed": 0, "rows": ("single32", "layered32"), "output_dir": "/x"}
    fresh = {"status": "ok", "parameters": {**params, "rows": ["single32", "layered32"]}, "wall_time_s": 900.0}
    assert longest_wall_time(fresh, params, 70.0) == 900.0  # the cached re-run keeps the fresh run's time
    assert longest_wall_time({**fresh, "longest_wall_time_s": 1000.0}, params, 1200.0) == 1200.0
    assert longest_wall_time({**fresh, "status": "failed"}, params, 70.0) == 70.0
    assert longest_wall_time(fresh, {**params, "seed": 1}, 70.0) == 70.0  # other parameters: a new count
    assert longest_wall_time({}, params, 70.0) == 70.0

    (tmp_path / "toy").mkdir()
    (tmp_path / "toy/provenance.json").write_text(json.dumps({**fresh, "wall_time_s": 70.0, "longest_wall_time_s": 900.0}))
    assert expected_seconds(tmp_path, [(TOY, params)]) == {"toy": 900.0}
    assert expected_seconds(tmp_path, [(TOY, {**params, "seed": 1})]) == {"toy": 70.0}  # last run's, as before
    assert expected_seconds(tmp_path / "empty", [(TOY, params)]) == {"toy": None}


def test_the_runner_says_what_a_busy_notebook_is_doing(tmp_path, monkeypatch, capfd):
    """A cell that takes a while: the console shows its progress reports, and the kernel starts without the
    unencrypted-TCP warning and keeps its IPC sockets out of the notebooks' folder (where an interrupted run
    would leave them)."""
    from ldlib.reproduction import runner

    monkeypatch.setattr(runner, "WATCH_EVERY_S", 0.5)
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    params = nbformat.v4.new_code_cell('profile = "smoke"\noutput_dir = ""\nseed = 0\nfail = 0\nvalue = 1.0')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "import os, time\nfrom ldlib.runtime.progress import report\n"
        "assert not [f for f in os.listdir('.') if 'ipc' in f], os.listdir('.')\n"
        "for step in range(1, 4):\n    report('training', 'toy-run', step, 3, images_per_s=2.0)\n    time.sleep(1.0)\n")
    nbformat.write(nbformat.v4.new_notebook(cells=[params, body]), nbs / "toy.ipynb")
    lines = []
    [ok] = reproduce("smoke", results_dir=tmp_path / "res", notebooks_dir=nbs, registry={"toy": TOY}, log=lines.append)
    assert ok.ok
    busy = [m for m in lines if m.startswith("[toy]") and "training toy-run: step" in m]
    assert busy and "suite ETA unknown" in busy[0]  # no earlier run of the toy in this results folder
    assert not (tmp_path / "res/smoke/toy/.progress.jsonl").exists()  # the progress file is not a result
    assert "without encryption" not in capfd.readouterr().err

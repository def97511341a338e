"""report.html: built from the results files, and shown by a real headless browser; the explorer notebook
executes headless."""

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ldlib.reproduction.report import build_report, chromium, find_chromium, screenshot, write_report  # noqa: E402


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "smoke" / "05_table1"
    folder.mkdir(parents=True)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(folder / "curve.png")
    plt.close(fig)
    metrics = {
        "notebook": "05_table1",
        "metrics": [{"key": "FID <layered>", "value": 12.5, "ci": [11.0, 14.0], "paper": 13.38, "source": "Table 1",
                     "unit": "", "note": "a & b", "verdict": "matches"}],
        "claims": [{"key": "layered beats single", "paper_says": "13.38 < 14.61", "we_find": "overlap", "agrees": None},
                   {"key": "fewer FLOPs", "paper_says": "yes", "we_find": "0.93", "agrees": True}],
        "figures": ["curve.png"],
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "provenance.json").write_text(json.dumps({"status": "ok", "git": {"commit": "abc123", "dirty": False},
                                                        "started_utc": "2026-01-01T00:00:00", "wall_time_s": 1.0}))
    return tmp_path / "smoke"


def test_report_holds_claims_numbers_and_figures(results):
    page = build_report(results)
    assert "1 agrees" in page and "1 unresolved" in page and "0 disagrees" in page
    assert "FID &lt;layered&gt;" in page and "a &amp; b" in page  # escaped, not injected
    assert "<img src='05_table1/curve.png'" in page and "05_table1/05_table1.ipynb" in page
    assert write_report(results).read_text() == page


@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(results, tmp_path):
    page = write_report(results)
    dom = chromium(["--dump-dom", page.resolve().as_uri()])  # the DOM after scripts ran and images loaded
    assert re.search(r'data-images-loaded="1/1"', dom)  # the figure file was found and decoded
    assert dom.count("<table") == 3 and "unresolved" in dom
    png = screenshot(page, tmp_path / "shot.png", width=800, height=600)
    assert png.stat().st_size > 10_000


def test_explorer_runs_headless(tmp_path, smoke_run):
    import papermill as pm

    run = smoke_run[0]
    out = tmp_path / "explore.ipynb"
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "00_explore.ipynb"
    pm.execute_notebook(str(notebook), str(out), parameters={"interactive": False,
                        "checkpoint": str(run.checkpoint)}, progress_bar=False, cwd=str(notebook.parent))
    nb = json.loads(out.read_text())
    images = [o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 3  # noise, schedules, sampling


def test_panels_become_widgets_when_interactive():
    ipywidgets = pytest.importorskip("ipywidgets", reason="the lab extra is not installed")
    from ldlib.reproduction import explore

    ui = explore.panel(explore.noise_view, True, **explore.controls_noise())
    assert isinstance(ui, ipywidgets.interactive)
    kind = next(w for w in ui.children if getattr(w, "description", "") == "noise")
    kind.value = "bilinear"  # a change re-draws without error
    assert ui.kwargs["kind"] == "bilinear"
    fig = explore.panel(explore.noise_view, False, **explore.controls_noise())  # headless: drawn once
    assert fig.axes

"""Every notebook, executed headless through papermill at the smoke profile (what CI runs)."""

import json

import nbformat
import pytest

from ldlib.reproduction.parameters import NOTEBOOKS
from ldlib.reproduction.runner import reproduce

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    mp = pytest.MonkeyPatch()
    mp.setenv("LDLIB_CACHE", str(tmp_path_factory.mktemp("cache")))  # trained runs: fresh, not the user's cache
    try:
        results = reproduce("smoke", results_dir=out, progress=False, log=lambda m: None)
    finally:
        mp.undo()
    return out / "smoke", results


def test_all_notebooks_pass(smoke_run):
    _, results = smoke_run
    assert [r.name for r in results] == list(NOTEBOOKS)
    failed = {r.name: r.error for r in results if not r.ok}
    assert not failed, failed


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_outputs(smoke_run, name):
    folder = smoke_run[0] / name
    nb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["metrics"] and metrics["claims"]
    for fig in metrics["figures"]:
        assert (folder / fig).stat().st_size > 5000
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["status"] == "ok" and prov["parameters"]["profile"] == "smoke"
    assert prov["versions"]["torch"] and prov["device"]["cpu_count"]


def test_smoke_findings(smoke_run):
    """The analytic notebooks' key findings hold even at smoke size."""
    recorded = [c for name in NOTEBOOKS for c in json.loads((smoke_run[0] / name / "metrics.json").read_text())["claims"]]
    claims = {c["key"]: c["agrees"] for c in recorded}
    assert claims["sinc keeps N(0, I)"] is True
    # the paper's reason fails (bilinear is linear, so Gaussian), its conclusion holds (the raw filter is not N(0, I))
    assert claims["the reason: bilinear interpolation is nonlinear, so its noise is not Gaussian"] is False
    assert claims["the conclusion: bilinear-downsampled noise is not N(0, I)"] is True
    kinds = {c["key"]: c["kind"] for c in recorded}
    assert kinds["sinc keeps N(0, I)"] == "analytic" and kinds["layered models cost fewer FLOPs"] == "analytic"
    assert all(c["verdict"] in ("agrees", "disagrees", "no effect", "unresolved") for c in recorded)
    assert any(c["kind"] == "empirical" for c in recorded)
    summary = (smoke_run[0] / "summary.md").read_text()
    assert all(f"## {name}" in summary for name in NOTEBOOKS)
    assert "**Indicative results**" in summary  # smoke and quick say they decide nothing
    # replication: two training seeds everywhere a claim rests on training, Table 1 along its budget curve
    protocols = {n: json.loads((smoke_run[0] / n / "metrics.json").read_text())["protocol"] for n in NOTEBOOKS}
    assert all(protocols[n]["training seeds"] == [0, 1] for n in NOTEBOOKS)
    assert protocols["05_table1"]["budgets (images seen)"] == [8, 24] and protocols["05_table1"]["rules"] == ["paper", "none"]
    assert "(2 seeds; paired" in claims_text(recorded, "layered beats single on FID @ 64px")


def claims_text(recorded: list[dict], key: str) -> str:
    return next(c["we_find"] for c in recorded if c["key"] == key)

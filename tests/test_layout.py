"""The package layout draws the architecture: each layer imports only from the layers below it, no module
reaches for another's private names, and the caches' code fingerprints cover every module they depend on."""

import ast
import shutil

import pytest

import ldlib
from ldlib.runtime.cache import PACKAGE_DIR, code_fingerprint, imported_modules, module_closure

#: bottom to top; the two bottom layers (data, runtime) do not import each other
LAYERS = {"ldlib.runtime": 0, "ldlib.data": 0, "paper": 1, "ldlib.training": 2, "ldlib.evaluation": 3,
          "ldlib.reproduction": 4, "ldlib.cli": 5}


def all_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def layer_of(name: str) -> str:
    for prefix in LAYERS:
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return "paper"  # a top-level module: the paper's method


def test_the_paper_sits_at_the_top_level_and_everything_else_in_its_folder():
    top = sorted(n for n in all_modules() if n.count(".") == 1 and layer_of(n) == "paper")
    assert top == ["ldlib.config", "ldlib.crop", "ldlib.flops", "ldlib.forward", "ldlib.loss", "ldlib.network",
                   "ldlib.noise", "ldlib.pyramid", "ldlib.sampler", "ldlib.schedules", "ldlib.stacking"]


@pytest.mark.parametrize("name", [n for n in all_modules() if n != "ldlib"])
def test_imports_run_downward(name):
    mine = layer_of(name)
    for target in imported_modules(name):
        theirs = layer_of(target)
        if target == "ldlib":
            continue
        assert LAYERS[theirs] <= LAYERS[mine], f"{name} ({mine}) imports {target} ({theirs}), a layer above it"
        if LAYERS[theirs] == LAYERS[mine] == 0:
            assert theirs == mine, f"{name} imports {target}: data and runtime are independent bottom layers"


def test_no_module_imports_another_modules_private_names():
    for path in PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(PACKAGE_DIR)} imports private {private} from {node.module}"


def test_run_cache_fingerprint_covers_every_module_training_runs():
    from ldlib.reproduction.run_cache import TRAINING_CODE

    covered = set(module_closure(TRAINING_CODE))
    must = {"ldlib.training.train", "ldlib.training.checkpoint", "ldlib.stacking", "ldlib.runtime.device",
            "ldlib.runtime.distributed", "ldlib.network", "ldlib.loss", "ldlib.forward", "ldlib.noise",
            "ldlib.pyramid", "ldlib.schedules", "ldlib.crop", "ldlib.config", "ldlib.data.datasets",
            "ldlib.data.images", "ldlib.data.shapes", "ldlib.data.text"}
    assert must <= covered
    assert not any(n.startswith(("ldlib.evaluation", "ldlib.reproduction")) for n in covered)  # not over-broad


def test_evaluation_fingerprint_covers_sampler_metrics_and_training():
    from ldlib.evaluation.evaluator import EVALUATION_CODE

    covered = set(module_closure(EVALUATION_CODE))
    assert {"ldlib.sampler", "ldlib.evaluation.metrics", "ldlib.evaluation.alignment",
            "ldlib.evaluation.retrieval", "ldlib.training.checkpoint", "ldlib.network"} <= covered


def test_a_fingerprint_changes_with_the_code_of_any_covered_module(tmp_path, monkeypatch):
    import ldlib.runtime.cache as files

    copy = tmp_path / "ldlib"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(files, "PACKAGE_DIR", copy)
    files.module_closure.cache_clear()
    roots = ("ldlib.training.train",)
    before = code_fingerprint(roots)
    stacking = copy / "stacking.py"
    source = stacking.read_text()
    # documentation is not code: a comment, a reworded docstring and blank lines keep cached runs
    stacking.write_text(source.replace('"""Model stacking', '"""Reworded: model stacking', 1) + "\n\n# a note\n")
    assert code_fingerprint(roots) == before
    stacking.write_text(source + "\nCHANGED = 1\n")
    assert code_fingerprint(roots) != before  # stacking is reached through training.checkpoint
    files.module_closure.cache_clear()


def test_module_closure_rejects_unknown_modules():
    with pytest.raises(ValueError, match="not a module of ldlib"):
        module_closure(("ldlib.nothing_here",))
    assert ldlib.__version__


def test_stored_evaluations_are_keyed_by_the_evaluation_code(monkeypatch, tmp_path):
    from ldlib.evaluation import Evaluator, evaluator
    from ldlib.training import TrainResult

    ev = Evaluator({"kind": "shapes", "n": 8, "seed": 0}, n_samples=4, steps=2, guidance=1.0, text_encoder="hash",
                   progress=False)
    run = TrainResult(tmp_path, 1, checkpoint=tmp_path / "step-00000001")
    assert ev.key(run) == ev.key(run)
    monkeypatch.setattr(evaluator, "code_fingerprint", lambda roots: "changed evaluation code")
    changed = ev.key(run)
    monkeypatch.undo()
    assert changed != ev.key(run)


def test_every_folder_is_a_package():
    """setuptools' package discovery (pyproject.toml) installs only folders with an ``__init__.py``."""
    folders = {p.parent for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    assert all((f / "__init__.py").is_file() for f in folders), sorted(str(f) for f in folders)

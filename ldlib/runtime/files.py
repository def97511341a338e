"""Files that readers can trust: atomic writes (a reader never sees half a file) and fingerprints of the
source code a cached result was computed with (a change of that code gives a new fingerprint).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = PACKAGE_DIR.name


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict:
    """A JSON file's content, or ``{}`` when it is missing or unreadable (a result not written yet)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def json_default(obj: Any):
    """``json.dumps(..., default=json_default)``: tensors' and numpy's scalars as numbers, tuples and sets as lists."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"cannot store {type(obj).__name__} as JSON")


def module_file(name: str) -> Path | None:
    """The source file of ``ldlib.a.b`` (a module or a package's ``__init__``), or None if there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(name: str) -> set[str]:
    """The ldlib modules that module ``name`` imports anywhere in its source (function-level imports too)."""
    path = module_file(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from . import distributed`` names a submodule; ``from .config import X`` a module's attribute
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found.update(t for t in targets if module_file(t) is not None)
    return found


@lru_cache(maxsize=None)
def module_closure(roots: tuple[str, ...]) -> tuple[str, ...]:
    """Every ldlib module that the ``roots`` import, directly or through others (the roots included), sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if module_file(name) is None:
            raise ValueError(f"{name} is not a module of {PACKAGE}")
        seen.add(name)
        parent = name.rpartition(".")[0]
        if parent and parent != PACKAGE:  # importing a submodule runs its package's __init__ too
            todo.append(parent)
        todo.extend(imported_modules(name) - seen)
    return tuple(sorted(seen))


def code_fingerprint(roots: Iterable[str]) -> str:
    """SHA-256 of the source of every module in :func:`module_closure` of ``roots``: what a cached result
    computed by that code depends on."""
    h = hashlib.sha256()
    for name in module_closure(tuple(roots)):
        h.update(name.encode() + b"\0" + module_file(name).read_bytes())
    return h.hexdigest()

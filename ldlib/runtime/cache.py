"""The cache of computed results (trained runs, stored features) and the fingerprints that key it: the
code of every ldlib module a result was computed with, found by following imports, so that a change of that
code gives a new key and the result is computed anew (a change of its documentation does not).
"""

from __future__ import annotations

import ast
import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = PACKAGE_DIR.name


def cache_root() -> Path:
    """Where trained runs and stored features live: ``$LDLIB_CACHE``, else the clone's ``.cache/ldlib/``
    (git-ignored)."""
    return Path(os.environ.get("LDLIB_CACHE") or PACKAGE_DIR.parent / ".cache" / "ldlib")


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


def executable_code(path: Path) -> bytes:
    """The module's syntax tree without docstrings (``ast.dump``: comments, blank lines and layout are not in
    it): what runs. Editing documentation therefore keeps cached results; any change of code does not. Parsed
    once per version of the file (its modification time and size): a fingerprint is asked for per cached item."""
    stat = Path(path).stat()
    return _executable_code(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=None)
def _executable_code(path: str, mtime_ns: int, size: int) -> bytes:
    tree = ast.parse(Path(path).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def code_fingerprint(roots: Iterable[str]) -> str:
    """SHA-256 of the code (:func:`executable_code`) of every module in :func:`module_closure` of ``roots``: what
    a cached result computed by that code depends on. (The tree's form can change between Python versions: a
    cache is kept per interpreter version in practice.)"""
    h = hashlib.sha256()
    for name in module_closure(tuple(roots)):
        h.update(name.encode() + b"\0" + executable_code(module_file(name)))
    return h.hexdigest()

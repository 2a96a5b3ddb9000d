"""The repository's shape: no top-level `operator` package, and a core free of I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "operator" / "rollwise" / "core"
FORBIDDEN = {"kopf", "kubernetes", "prometheus_api_client", "asyncio", "time", "logging"}


def test_operator_folder_is_not_a_package() -> None:
    # A package named `operator` would shadow the standard library's `operator` module.
    assert not (ROOT / "operator" / "__init__.py").exists()


def imported_roots(source: str) -> set[str]:
    """The top-level module of every import in a module, at any depth (functions included)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


CORE_MODULES = sorted(CORE.rglob("*.py"))


def test_the_core_has_modules_to_check() -> None:
    names = {p.name for p in CORE_MODULES}

    assert {"decide.py", "gates.py", "model.py"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.name)
def test_core_imports_no_io_library(path: Path) -> None:
    forbidden = imported_roots(path.read_text()) & FORBIDDEN

    assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)}"


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import logging.handlers",
        "from kubernetes import client",
        "def f():\n    import asyncio",
        "import importlib\nimportlib.import_module('kopf')",
        "__import__('prometheus_api_client')",
    ],
)
def test_the_import_check_sees_every_kind_of_import(source: str) -> None:
    assert imported_roots(source) & FORBIDDEN

"""The layout DESIGN.md promises: short modules and functions (docstrings not counted),
the book's loop short and free of a run's machinery, and ``kernels`` this repository's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kernels

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("fastnet/**/*.py"), *ROOT.glob("kernels/**/*.py")])
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_modules_and_functions_are_short(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{_name(path)}: make it a package"
    functions = [
        node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    long = [f"{f.name} ({_length(f)} lines)" for f in functions if _length(f) > MAX_FUNCTION_LINES]
    assert not long, f"{_name(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def _docstring_lines(node: ast.AST) -> set[int]:
    """The line numbers of ``node``'s docstring (empty without one)."""
    body = getattr(node, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
        if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            return set(range(body[0].lineno, body[0].end_lineno + 1))
    return set()


def _length(function: ast.AST) -> int:
    """Lines of ``function``, its docstring not counted (documentation is welcome)."""
    return function.end_lineno - function.lineno + 1 - len(_docstring_lines(function))


def _code_lines(path: Path) -> int:
    """Lines of ``path`` that hold code: not blank, not comments, not docstrings."""
    docstrings = set().union(*map(_docstring_lines, ast.walk(ast.parse(path.read_text()))))
    lines = path.read_text().splitlines()
    return sum(
        1
        for i, line in enumerate(lines, 1)
        if line.strip() and not line.strip().startswith("#") and i not in docstrings
    )


def test_the_loop_is_short_and_knows_nothing_of_a_run():
    loop = ROOT / "fastnet" / "loop.py"
    assert _code_lines(loop) < 60
    imported = {
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.walk(ast.parse(loop.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    banned = {"signal", "fastnet.run", "fastnet.distributed", "fastnet.checkpoint", "tqdm", "os"}
    assert not imported & banned, imported & banned


def test_kernels_is_this_repositorys_package():
    """PyPI has an unrelated package named ``kernels``; this one must win."""
    assert Path(kernels.__file__).resolve().parent == ROOT / "kernels"

"""Code shape: no function over 60 lines and no class over 250 in bot/, worker/ and orchestrator/.

Long functions and classes are where newcomers stumble (issue 11); this keeps the rooms small as
they grow. Lines are counted from the ``def``/``class`` line to the last line of its body.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "worker", "orchestrator")
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 250


def too_long(source: str) -> list[tuple[str, str, int]]:
    """(kind, name, lines) of every function or class in ``source`` over its limit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines = node.end_lineno - node.lineno + 1
            kind, limit = ("class", MAX_CLASS_LINES) if isinstance(node, ast.ClassDef) else \
                ("function", MAX_FUNCTION_LINES)
            if lines > limit:
                found.append((kind, node.name, lines))
    return found


def test_the_check_finds_a_long_function_and_a_long_class():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    methods = "\n".join(f"    def m{i}(self):\n        return {i}\n" for i in range(MAX_CLASS_LINES // 3 + 1))
    assert too_long(f"def f():\n{body}\n") == [("function", "f", MAX_FUNCTION_LINES + 1)]
    assert [kind for kind, _, _ in too_long(f"class C:\n{methods}")] == ["class"]
    assert too_long("def g():\n    return 1\n") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_over_60_lines_and_no_class_over_250(package):
    offenders = [
        f"{path.relative_to(ROOT)}: {kind} {name} has {lines} lines"
        for path in sorted((ROOT / package).rglob("*.py"))
        for kind, name, lines in too_long(path.read_text())
    ]
    assert offenders == []

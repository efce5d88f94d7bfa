"""The extension's type stubs (`_core.pyi`) must describe exactly what the extension exports."""

from __future__ import annotations

import ast
import inspect
import pathlib

from codekiln import _core

STUB = pathlib.Path(_core.__file__).with_name("_core.pyi")


def _stub_members() -> dict[str, set[str]]:
    tree = ast.parse(STUB.read_text())
    members: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            members[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members[node.target.id] = set()
        elif isinstance(node, ast.ClassDef):
            members[node.name] = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"
            }
    return members


def test_stub_names_match_extension() -> None:
    stub = _stub_members()
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert set(stub) == public, f"stub-only: {set(stub) - public}, missing: {public - set(stub)}"
    for name, methods in stub.items():
        obj = getattr(_core, name)
        if inspect.isclass(obj):
            real = {n for n in dir(obj) if not n.startswith("_")}
            assert methods == real, f"{name}: stub-only {methods - real}, missing {real - methods}"

"""The shape of the Python package: import rules that keep the layout honest.

* module-level imports between codekiln modules form no cycle;
* nothing outside ``codekiln/tokenizer/`` reaches into a tokenizer's internals;
* ``import codekiln``, the tokenizer package and the CLI parser do not import torch;
* the old module paths are gone (no second way to import the same thing).
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys

import codekiln
import pytest

PACKAGE = pathlib.Path(codekiln.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The codekiln modules ``path`` imports when it is imported (not in functions, not under
    ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if sub in modules:
                        found.add(sub)
                    elif node.module in modules:
                        found.add(node.module)

    visit(tree.body)
    return found


def test_no_import_cycles() -> None:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _module_level_imports(path, set(files)) - {name} for name, path in files.items()}
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_tokenizer_package_layering() -> None:
    """format is a leaf; trainer and core never import stats, interop or cli."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    mods = set(files)

    def deps(name: str) -> set[str]:
        return _module_level_imports(files[name], mods)

    assert not {d for d in deps("codekiln.tokenizer.format") if d != "codekiln"}
    upper = {"codekiln.tokenizer.stats", "codekiln.tokenizer.interop", "codekiln.tokenizer.cli"}
    for low in ("codekiln.tokenizer.trainer", "codekiln.tokenizer.core"):
        assert not deps(low) & upper, low
    assert "codekiln.tokenizer.core" not in deps("codekiln.tokenizer.trainer")


def test_tokenizer_internals_stay_inside_the_package() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "tokenizer":
            continue
        text = path.read_text(encoding="utf-8")
        for name in ("._encoder", "._bytes_table"):
            if name in text:
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not offenders


def test_light_imports_do_not_import_torch() -> None:
    code = (
        "import sys, codekiln, codekiln.tokenizer, codekiln.cli, codekiln.corpus\n"
        "from codekiln import Tokenizer\n"
        "from codekiln.tokenizer import Tokenizer as T2\n"
        "assert Tokenizer is T2\n"
        "codekiln.cli.build_parser()\n"
        "bad = [m for m in ('torch', 'triton', 'tokenizers', 'tiktoken') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    "old",
    [
        "codekiln.stats",
        "codekiln.export",
        "codekiln.shards",
        "codekiln._tokenizer_file",
        "codekiln._training",
        "codekiln._sources",
        "codekiln.data.sources",
    ],
)
def test_old_module_paths_are_gone(old: str) -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def _all_imports(path: pathlib.Path) -> set[str]:
    """Every absolute module name ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _under(names: set[str], prefix: str) -> set[str]:
    return {n for n in names if n == prefix or n.startswith(prefix + ".")}


def test_the_model_knows_only_token_ids() -> None:
    for name in ("model.py", "attention.py"):
        imports = _all_imports(PACKAGE / name)
        ours = _under(imports, "codekiln")
        prefixes = ("codekiln.attention", "codekiln.attention_auto", "codekiln.kernels")
        allowed = set(prefixes) | {
            n for n in ours if n.startswith(tuple(p + "." for p in prefixes))
        }
        assert ours <= allowed, (name, ours - allowed)


def test_model_users_load_runs_through_checkpoint_not_train() -> None:
    users = [PACKAGE / "generate.py", PACKAGE / "hf.py", *(PACKAGE / "evaluate").rglob("*.py")]
    checked = 0
    for path in users:
        if path.exists():
            checked += 1
            assert not _under(_all_imports(path), "codekiln.train"), path
    assert checked >= 1


def test_shipped_code_never_imports_the_workbench_or_benchmarks() -> None:
    for path in PACKAGE.rglob("*.py"):
        imports = _all_imports(path)
        assert not _under(imports, "benchmarks"), path
        assert not _under(imports, "kernels"), path  # the top-level GPU workbench

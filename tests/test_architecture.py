"""The layers as a contract (docs/architecture.md), read from the code's imports.

- import-linter's contracts in pyproject.toml: `detectors` never imports `fakestudio`, torch or
  diffusers; the registry server never imports torch; the core commands need no extra; no
  cycle between sibling packages.
- no import cycle among the modules of `fakestudio` and `detectors`, counting the imports
  inside functions (grimp reads them all): a cycle hidden in a function is still a cycle;
- no private name (`_x`) imported from another module: what two modules share is public.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")
importlinter_cli = pytest.importorskip("importlinter.cli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fakestudio", "detectors")


def test_the_import_contracts_are_kept(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = importlinter_cli.lint_imports(
        config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out


def import_cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles():
    cycles = import_cycles()
    print(f"import cycles among {', '.join(PACKAGES)} modules: {len(cycles)}")
    assert cycles == []


def private_imports() -> list[str]:
    """`from pkg.module import _name` of another module's private name, and `module._name`
    where `module` is one of the project's modules, anywhere in the packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            modules: dict[str, str] = {}  # local name -> a project module imported as it
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGES):
                    for alias in node.names:
                        if _private(alias.name):
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {alias.name}")
                        full = f"{node.module}.{alias.name}"
                        if _is_module(full):
                            modules[alias.asname or alias.name] = full
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith(PACKAGES) and alias.asname:
                            modules[alias.asname] = alias.name
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in modules
                    and _private(node.attr)
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.attr}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def test_no_private_names_cross_modules():
    assert private_imports() == []

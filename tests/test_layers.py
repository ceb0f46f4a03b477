"""The package tree is the architecture: imports flow one way (import-linter's contracts in
pyproject.toml: layers, click only in cli/, openai only in provider/), no two modules import
each other even for type checking, and no module grows past the size we split at."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "orchestrator"
MAX_LINES = 420  # "under ~400": a little slack, so a docstring line never fails the build


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every module's imports of other orchestrator modules, TYPE_CHECKING ones included."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "orchestrator"
            ):
                target = node.module or ""
            else:
                continue
            if target in modules and target != name:
                found.add(target)
        graph[name] = found
    return graph


def test_import_linter_contracts_hold() -> None:
    code = (
        "import sys; from importlinter.cli import lint_imports_command; "
        "sys.argv = ['lint-imports', '--no-cache', '--no-logo']; lint_imports_command()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_module_import_cycles() -> None:
    """Depth-first search over the module graph; a back edge is a cycle."""
    graph = _imports()
    # An __init__ importing its own package's modules is how a package exports: not a cycle.
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_modules_stay_small() -> None:
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_only_orchestrator_is_layered_and_tests_mirror_it() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    tests = {p.name for p in (REPO / "tests").iterdir() if (p / "__init__.py").is_file()}
    assert tests <= packages, tests - packages

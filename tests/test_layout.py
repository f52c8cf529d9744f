"""The package's shape: where typer and rich may be imported, what the sandbox may use,
module size, and no import circle (issue "The house")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "t360cli"
MODULES = sorted(PACKAGE.rglob("*.py"))
UI_MODULES = {"t360cli/ui.py"} | {
    name for name in (p.relative_to(PACKAGE.parent).as_posix() for p in MODULES) if name.startswith("t360cli/cli/")
}
MAX_LINES = 400


def name_of(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def imported(path: Path, package: str = "t360cli") -> set[str]:
    """Absolute dotted names a module imports (relative ones resolved against its package)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = parent + (f".{base}" if base else "")
            names.add(base)
            if (PACKAGE.parent / base.replace(".", "/")).is_dir():  # from a package: its modules
                names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_the_package_is_there() -> None:
    assert {"t360cli/cli/__init__.py", "t360cli/ui.py", "t360cli/sandbox/__init__.py", "t360cli/contract.py"} <= {
        name_of(p) for p in MODULES
    }


def test_imported_finds_every_form(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "import rich.table\nfrom typer import Exit\nfrom . import contract\n"
        "from .errors import X\nfrom t360cli import config, ui\ndef f():\n    import yaml\n"
    )
    assert imported(src) == {
        "rich.table",
        "typer",
        "t360cli",
        "t360cli.contract",
        "t360cli.errors",
        "t360cli.config",
        "t360cli.ui",
        "yaml",
    }
    sub = tmp_path / "s.py"
    sub.write_text("from . import csv\nfrom .. import ui\nfrom ..errors import E\n")
    assert imported(sub, "t360cli.readers") == {
        "t360cli.readers",
        "t360cli.readers.csv",
        "t360cli",
        "t360cli.ui",
        "t360cli.errors",
    }


def package_of(path: Path) -> str:
    """The package a module's relative imports resolve against (its folder, for __init__ too)."""
    return ".".join(path.relative_to(PACKAGE.parent).parts[:-1])


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_typer_and_rich_only_in_cli_and_ui(path: Path) -> None:
    if name_of(path) in UI_MODULES:
        return
    ui_libs = sorted(n for n in imported(path, package_of(path)) if n.split(".")[0] in ("typer", "rich", "click"))
    assert not ui_libs, f"{name_of(path)} imports {ui_libs}; only cli/ and ui.py may (the rest is a library)"


def test_sandbox_shares_only_the_contract() -> None:
    """The sandbox plays Track360: it shares nothing with the client but the guide's fields."""
    sandbox = sorted((PACKAGE / "sandbox").glob("*.py"))
    assert sandbox
    own = {n for path in sandbox for n in imported(path, package_of(path)) if n.split(".")[0] == "t360cli"}
    outside = {n for n in own if not n.startswith("t360cli.sandbox")} - {"t360cli", "t360cli.contract"}
    assert not outside, sorted(outside)


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name_of(path)} has {lines} lines; split it (modules stay under ~400)"


def test_cli_import_leaves_pyarrow_unloaded() -> None:
    """cli.main() picks Arrow's allocator via the environment, so pyarrow must not be
    imported before it runs (a 60 MB difference in peak RSS on 1M rows)."""
    import subprocess
    import sys

    code = "import sys, t360cli.cli; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def module_name(path: Path) -> str:
    return package_of(path) if path.name == "__init__.py" else f"{package_of(path)}.{path.stem}"


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, lazy imports inside functions included."""
    names = {module_name(path): path for path in MODULES}
    return {
        name: {n for n in imported(path, package_of(path)) if n in names and n != name} for name, path in names.items()
    }


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                return stack[stack.index(other) :] + [other]
            if other not in state and (circle := visit(other)):
                return circle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (circle := visit(name)):
            return circle
    return None


def test_no_import_circle() -> None:
    circle = find_circle(import_graph())
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def test_find_circle_sees_one() -> None:
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None

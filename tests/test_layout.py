"""The package's shape: where typer and rich may be imported, what the sandbox may use, module size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "t360cli"
MODULES = sorted(PACKAGE.rglob("*.py"))
UI_MODULES = {"t360cli/cli.py", "t360cli/ui.py"}
MAX_LINES = 600


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
    assert {"t360cli/cli.py", "t360cli/ui.py", "t360cli/sandbox.py", "t360cli/contract.py"} <= {
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
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts if path.name == "__init__.py" else parts[:-1])


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_typer_and_rich_only_in_cli_and_ui(path: Path) -> None:
    if name_of(path) in UI_MODULES:
        return
    ui_libs = sorted(n for n in imported(path, package_of(path)) if n.split(".")[0] in ("typer", "rich", "click"))
    assert not ui_libs, f"{name_of(path)} imports {ui_libs}; only cli.py and ui.py may (the rest is a library)"


def test_sandbox_shares_only_the_contract() -> None:
    own = sorted(n for n in imported(PACKAGE / "sandbox.py") if n.split(".")[0] == "t360cli")
    assert own in ([], ["t360cli.contract"], ["t360cli", "t360cli.contract"]), own


@pytest.mark.parametrize("path", MODULES, ids=name_of)
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_LINES, f"{name_of(path)} has {lines} lines; split it (modules stay under ~400)"


def test_cli_import_leaves_pyarrow_unloaded() -> None:
    """cli.main() picks Arrow's allocator via the environment, so pyarrow must not be
    imported before it runs (a 60 MB difference in peak RSS on 1M rows)."""
    import subprocess
    import sys

    code = "import sys, t360cli.cli; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""t360cli.files: whole files written atomically, with the mode asked for (STYLE habit 12, SPEC 11)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from t360cli import files
from t360cli.files import PRIVATE, write_atomic


@pytest.fixture
def umask() -> Iterator[None]:
    """Run the test under umask 022, then restore the process's own."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_with_parent_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.json"
    write_atomic(target, b"{}\n")
    assert target.read_bytes() == b"{}\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]  # no temporary file left


def test_ordinary_mode_follows_the_umask(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "report.json"
    write_atomic(target, b"x")
    assert mode_of(target) == 0o644
    os.umask(0o077)
    write_atomic(target, b"y")
    assert mode_of(target) == 0o600


@pytest.mark.parametrize("mode", [PRIVATE, 0o640, 0o666])
def test_explicit_mode_is_exact_whatever_the_umask(tmp_path: Path, umask: None, mode: int) -> None:
    target = tmp_path / "rejects.csv"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    write_atomic(target, b"new", mode)
    assert mode_of(target) == mode
    assert target.read_bytes() == b"new"


def test_replaced_atomically_a_reader_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "log.jsonl"
    target.write_bytes(b"old\n")
    before = target.stat().st_ino
    with open(target, "rb") as reader:
        write_atomic(target, b"new\n")
        assert reader.read() == b"old\n"  # the open file is the old one, whole
    assert target.read_bytes() == b"new\n"
    assert target.stat().st_ino != before  # a new file renamed over the old name, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["log.jsonl"]


@pytest.mark.parametrize("fails", ["fsync", "replace"])
def test_failure_leaves_the_target_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    target = tmp_path / "report.json"
    target.write_bytes(b"old")

    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, fails, broken)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new", PRIVATE)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_folder_in_the_way_is_an_error_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.mkdir()
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert target.is_dir()

"""t360cli.files: whole files written atomically, with the mode asked for (STYLE habit 12, SPEC 11)."""

from __future__ import annotations

import errno
import os
import select
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from t360cli import files
from t360cli.errors import ExitCode, T360Error
from t360cli.files import PRIVATE, UnsafePath, WriteFailed, refuse_symlink, write_atomic, write_user_file


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
    with pytest.raises(WriteFailed) as info:
        write_atomic(target, b"new", PRIVATE)
    monkeypatch.undo()
    assert str(info.value) == f"cannot write {target}: No space left on device. " + (
        "Free some disk space, then run the same command again."
    )
    assert (info.value.path, info.value.cause) == (target, "No space left on device")
    assert isinstance(info.value.__cause__, OSError)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_folder_in_the_way_is_an_error_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.mkdir()
    with pytest.raises(WriteFailed, match=r"cannot write .*report\.json: Is a directory\."):
        write_atomic(target, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    assert target.is_dir()


# --- SPEC 11: paths the user names are written through; state_dir never follows a link


def test_user_file_regular_or_absent_is_replaced_atomically(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "out" / "rejects.csv"
    write_user_file(target, b"a\n", PRIVATE)
    assert target.read_bytes() == b"a\n" and mode_of(target) == PRIVATE
    before = target.stat().st_ino
    write_user_file(target, b"b\n")
    assert target.read_bytes() == b"b\n" and target.stat().st_ino != before  # renamed over, not rewritten
    assert [p.name for p in target.parent.iterdir()] == ["rejects.csv"]


def test_symlink_to_a_file_is_written_through_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_bytes(b"old and longer\n")
    os.chmod(real, 0o640)
    link = tmp_path / "report.json"
    link.symlink_to(real)
    inode = real.stat().st_ino
    write_user_file(link, b"new\n", PRIVATE)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new\n"  # truncated, as `>` does
    assert real.stat().st_ino == inode and mode_of(real) == 0o640  # in place; an existing file keeps its mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.json", "report.json"]


def test_dangling_symlink_creates_its_target_like_a_shell(tmp_path: Path, umask: None) -> None:
    link = tmp_path / "rejects.csv"
    link.symlink_to(tmp_path / "elsewhere.csv")
    write_user_file(link, b"x\n", PRIVATE)
    assert link.is_symlink() and (tmp_path / "elsewhere.csv").read_bytes() == b"x\n"
    assert mode_of(tmp_path / "elsewhere.csv") == PRIVATE  # a created file holding customer data


def read_fifo(fifo: Path, out: list[bytes], ready: threading.Event, deadline_s: float = 10.0) -> None:
    """Read a FIFO until its writer closes it, giving up after `deadline_s` (never hangs the test)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # does not wait for a writer
    ready.set()
    deadline = time.monotonic() + deadline_s
    seen_data = False
    try:
        while time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.05)
            if not readable:
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if chunk:
                out.append(chunk)
                seen_data = True
            elif seen_data:
                return  # the writer closed its end
            else:
                time.sleep(0.01)  # no writer yet
    finally:
        os.close(fd)


@pytest.mark.parametrize("via_link", [False, True], ids=["fifo", "symlink-to-fifo"])
def test_fifo_is_written_through(tmp_path: Path, via_link: bool) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = fifo
    if via_link:
        target = tmp_path / "report.json"
        target.symlink_to(fifo)
    data = os.urandom(300_000)  # more than a pipe holds: written in parts while the reader drains
    got: list[bytes] = []
    ready = threading.Event()
    reader = threading.Thread(target=read_fifo, args=(fifo, got, ready), daemon=True)
    reader.start()
    assert ready.wait(10)
    write_user_file(target, data, PRIVATE)
    reader.join(10)
    assert not reader.is_alive()
    assert b"".join(got) == data
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # never replaced by a file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["pipe"] + (["report.json"] if via_link else []))


def test_parent_is_a_file_is_write_failed_without_leftovers(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    for target, writer in ((blocker / "report.json", write_user_file), (blocker / "report.json", write_atomic)):
        with pytest.raises(WriteFailed) as info:
            writer(target, b"x")
        assert str(info.value).startswith(f"cannot write {target}: Not a directory.")
        assert info.value.exit_code == ExitCode.USAGE and isinstance(info.value, T360Error)
    with pytest.raises(WriteFailed, match="Not a directory"):
        write_user_file(blocker / "deeper" / "report.json", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["blocker"]


def test_a_folder_named_by_the_user_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WriteFailed, match=r"cannot write .*: Is a directory\."):
        write_user_file(tmp_path, b"x")


def test_write_through_failure_removes_what_it_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    link = tmp_path / "report.json"
    link.symlink_to(tmp_path / "target.json")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", full)
    with pytest.raises(WriteFailed, match=r"No space left on device\. Free some disk space"):
        write_user_file(link, b"x")
    monkeypatch.undo()
    assert link.is_symlink() and not (tmp_path / "target.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_refuse_symlink_in_state_dir(tmp_path: Path) -> None:
    real_state = tmp_path / "real-state"
    (real_state / "runs").mkdir(parents=True)
    state = tmp_path / "state"
    state.symlink_to(real_state)  # state_dir itself may be a link: the user chose it
    log = state / "runs" / "a.jsonl"
    refuse_symlink(log, "progress log", state)
    refuse_symlink(state / "new" / "deeper" / "x.jsonl", "progress log", state)  # not there yet: fine

    (real_state / "elsewhere").mkdir()
    (real_state / "linked").symlink_to(real_state / "elsewhere")
    with pytest.raises(UnsafePath) as info:
        refuse_symlink(state / "linked" / "a.jsonl", "progress log", state)
    assert str(info.value) == (
        f"refusing the progress log {state / 'linked' / 'a.jsonl'}: {state / 'linked'} is a symbolic link. "
        "t360 never follows a symbolic link inside state_dir; remove the link, or set state_dir to a real folder."
    )
    assert info.value.exit_code == ExitCode.USAGE

    (real_state / "runs" / "b.jsonl").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafePath, match=r"refusing the rejects file .*b\.jsonl: it is a symbolic link\."):
        refuse_symlink(state / "runs" / "b.jsonl", "rejects file", state)
    with pytest.raises(UnsafePath, match="it is a symbolic link"):
        refuse_symlink(state / "runs" / "b.jsonl", "rejects file")  # without state_dir: the path itself

"""Tests for t360cli.progress_log: round trip, torn lines, header checks, restart, lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from t360cli import progress_log
from t360cli.deliver import latest_entries
from t360cli.errors import LogError
from t360cli.files import PRIVATE, UnsafePath, WriteFailed
from t360cli.progress_log import LogLock, RunLog, read_log

HEADER = {
    "tool": "t360 0.1.0",
    "kind": "activities",
    "files": [{"path": "a.csv", "size": 10, "sha256": "aa" * 32}],
    "mapping_sha256": "bb" * 32,
    "batch_size": 500,
    "host": "api.example.test",
    "started_at": "2025-01-01T00:00:00Z",
}
KEYS = ("kind", "files", "mapping_sha256", "batch_size")


def entry(i: int, status: str = "acked") -> dict:
    return {
        "index": i,
        "rows": [[0, i + 2]],
        "records": 1,
        "sha256": "cc" * 32,
        "status": status,
        "attempts": 1,
        "statuses": {"200": 1},
        "error": None,
    }


def test_round_trip_and_resume(tmp_path: Path):
    path = tmp_path / "runs" / "r.jsonl"
    with RunLog.open(path, HEADER, match_keys=KEYS) as log:
        log.append(entry(0, "failed"))
        log.append(entry(1))
        log.append(entry(0))
    header, entries = read_log(path)
    assert header == HEADER
    assert [e["index"] for e in entries] == [0, 1, 0]
    later = dict(HEADER, started_at="2025-02-02T00:00:00Z")
    with RunLog.open(path, later, match_keys=KEYS) as log:
        assert log.header == HEADER  # the stored header, not the new one
        assert latest_entries(log.entries) == {0: entry(0), 1: entry(1)}
        log.append(entry(2))
    assert len(read_log(path)[1]) == 4
    assert not (tmp_path / "runs" / "r.jsonl.lock").exists()


def test_torn_last_line_is_ignored_and_truncated_on_resume(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    with RunLog.open(path, HEADER) as log:
        log.append(entry(0))
    good = path.read_bytes()
    path.write_bytes(good + b'{"index": 1, "status": "ac')
    assert read_log(path) == (HEADER, [entry(0)])
    with RunLog.open(path, HEADER, match_keys=KEYS) as log:
        assert log.entries == [entry(0)]
        log.append(entry(1))
    assert path.read_bytes() == good + orjson.dumps(entry(1)) + b"\n"


def test_complete_last_line_without_newline_is_kept(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(orjson.dumps(HEADER) + b"\n" + orjson.dumps(entry(0)))
    with RunLog.open(path, HEADER) as log:
        assert log.entries == [entry(0)]
        log.append(entry(1))
    assert read_log(path)[1] == [entry(0), entry(1)]


def test_corrupt_middle_line_is_refused(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    lines = [orjson.dumps(HEADER), b'{"index": 0, "sta', orjson.dumps(entry(1)), b""]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(LogError) as info:
        read_log(path)
    assert f"{path}, line 2: not valid JSON" in str(info.value)
    with pytest.raises(LogError):
        RunLog.open(path, HEADER)
    assert path.read_bytes() == b"\n".join(lines)  # left as it was
    assert not Path(str(path) + ".lock").exists()


def test_missing_or_invalid_header(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"")
    with pytest.raises(LogError, match="line 1: no header line"):
        read_log(path)
    path.write_bytes(b"[1, 2]\n")
    with pytest.raises(LogError, match="line 1: the header is not a JSON object"):
        read_log(path)
    path.write_bytes(orjson.dumps(HEADER) + b'\n{"status": "acked"}\n')
    with pytest.raises(LogError, match="line 2: not a batch entry"):
        read_log(path)
    with pytest.raises(LogError, match="no such progress log"):
        read_log(tmp_path / "absent.jsonl")


def test_header_mismatch_is_refused_with_what_differs(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    RunLog.open(path, HEADER).close()
    changed = dict(HEADER, files=[{"path": "a.csv", "size": 10, "sha256": "dd" * 32}])
    with pytest.raises(LogError) as info:
        RunLog.open(path, changed, match_keys=KEYS)
    text = str(info.value)
    assert "files[0].sha256: the log has" in text and "dd" * 32 in text
    assert "use --restart to start over or --log for a new log" in text.lower()
    assert not Path(str(path) + ".lock").exists()
    # keys outside match_keys may differ
    RunLog.open(path, dict(HEADER, host="other"), match_keys=KEYS).close()


def test_restart_keeps_the_old_file(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    with RunLog.open(path, HEADER) as log:
        log.append(entry(0))
    old = path.read_bytes()
    new_header = dict(HEADER, batch_size=100)
    for _ in range(2):
        with RunLog.open(path, new_header, restart=True, match_keys=KEYS) as log:
            assert log.entries == [] and log.header == new_header
            assert log.set_aside is not None and log.set_aside.name.endswith(".old")
    olds = sorted(tmp_path.glob("r.jsonl.*.old"))
    assert len(olds) == 2
    assert old in [p.read_bytes() for p in olds]
    assert read_log(path) == (new_header, [])


def test_append_fsyncs_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(progress_log.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    with RunLog.open(tmp_path / "r.jsonl", HEADER) as log:
        before = len(calls)
        log.append(entry(0))
        log.append(entry(1))
        assert len(calls) == before + 2
    with RunLog.open(tmp_path / "s.jsonl", HEADER) as log, pytest.raises(ValueError):
        log.append({"status": "x"})


def test_lock_held_by_current_process_is_refused_with_pid(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    with RunLog.open(path, HEADER):
        with pytest.raises(LogError) as info:
            RunLog.open(path, HEADER)
        assert f"in use by process {os.getpid()} (another t360 run?)" in str(info.value)
        assert info.value.exit_code == 2
    RunLog.open(path, HEADER).close()  # released


HOLDER = """
import sys
from pathlib import Path
from t360cli.progress_log import LogLock
lock = LogLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
"""


def test_lock_held_by_another_live_process(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LogError, match=f"in use by process {proc.pid} "):
            RunLog.open(path, HEADER)
    finally:
        proc.communicate("\n", timeout=30)
    assert not Path(str(path) + ".lock").exists()
    RunLog.open(path, HEADER).close()


def test_stale_lock_of_a_finished_process_is_taken_over(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = int(done.stdout)
    lock_path = Path(str(path) + ".lock")
    lock_path.write_text(f"{dead}\n")
    with RunLog.open(path, HEADER):
        assert lock_path.read_text().strip() == str(os.getpid())
    assert not lock_path.exists()


def test_empty_lock_file_young_is_respected_old_is_stale(tmp_path: Path):
    lock = LogLock(tmp_path / "r.jsonl")
    lock.path.write_bytes(b"")
    with pytest.raises(LogError, match="in use by another process"):
        lock.acquire()
    old = time.time() - 3600
    os.utime(lock.path, (old, old))
    assert lock.acquire().held
    lock.release()
    assert not lock.path.exists()


def test_release_leaves_a_lock_that_is_not_ours(tmp_path: Path):
    lock = LogLock(tmp_path / "r.jsonl").acquire()
    lock.path.write_text("999999999\n")  # someone broke and retook it
    lock.release()
    assert lock.path.exists()


# --- SPEC 10/11: hostile logs, a full disk, links


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"\x00\xff\xfe random \x81 bytes\n", "line 1: not valid JSON ("),
        (b"\xff\xfe\x00\x01", "line 1: no header line"),  # no newline at all: a torn first line
        (b'"just text"\n', "line 1: the header is not a JSON object"),
        (b'{"files": {"a": 1}}\n', "line 1: the header's files is not a list of objects with a path"),
        (b'{"kind": 7}\n', "line 1: the header's kind is not text"),
        (b'{"kind": "customers"}\n{"index": -1, "summary": [1]}\n', "line 2: a summary line whose summary is not"),
        (b'{"kind": "customers"}\n{"index": 0, "status": 1}\n', "line 2: a batch entry whose status is not text"),
        (b'{"kind": "customers"}\n{"index": true}\n', "line 2: not a batch entry"),
        (b'{"kind": "customers"}\n\n{"index": 0}\n', "line 2: not valid JSON ("),
        (b'{"kind": "c\xe9"}\n', "line 1: not valid JSON ("),
    ],
)
def test_malformed_logs_are_one_log_error(tmp_path: Path, data: bytes, expected: str):
    path = tmp_path / "r.jsonl"
    path.write_bytes(data)
    with pytest.raises(LogError) as info:
        read_log(path)
    assert str(info.value).startswith(f"{path}, ") and expected in str(info.value)
    assert str(info.value).endswith("the progress log is damaged. Use --restart to start over or --log for a new log.")
    with pytest.raises(LogError):
        RunLog.open(path, HEADER)
    assert path.read_bytes() == data and not Path(str(path) + ".lock").exists()


def test_a_huge_line_is_refused_without_reading_it_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(progress_log, "_MAX_LINE", 1000)
    path = tmp_path / "r.jsonl"
    path.write_bytes(orjson.dumps(HEADER) + b"\n" + b'{"index": 0, "x": "' + b"a" * 5000 + b'"}\n')
    with pytest.raises(LogError, match=r"r\.jsonl, line 2: a line longer than 1000 bytes; the progress log is damaged"):
        read_log(path)


def test_not_a_file_is_refused_without_blocking(tmp_path: Path):
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)  # opening it to read would wait for a writer: never opened
    with pytest.raises(LogError, match=r"fifo\.jsonl: not a file, so not a progress log\."):
        read_log(fifo)
    with pytest.raises(LogError, match="not a file"):
        read_log(tmp_path)


def test_a_new_log_is_private(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    RunLog.open(path, HEADER).close()
    assert path.stat().st_mode & 0o777 == PRIVATE


def test_disk_full_while_appending_is_write_failed_and_the_log_stays_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "r.jsonl"
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > 20:
            real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    with RunLog.open(path, HEADER) as log:
        log.append(entry(0))
        monkeypatch.setattr(progress_log.os, "write", half_then_full)
        with pytest.raises(WriteFailed) as info:
            log.append(entry(1))
        monkeypatch.undo()
        assert str(info.value) == (
            f"cannot write {path}: No space left on device. Free some disk space, then run the same command again."
        )
        assert info.value.path == path and log.entries == [entry(0)]
        log.append(entry(2))  # the half line was cut off again
    assert read_log(path) == (HEADER, [entry(0), entry(2)])


def test_state_dir_links_are_refused_before_the_lock(tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (state / "runs").symlink_to(tmp_path / "elsewhere")
    path = state / "runs" / "r.jsonl"
    with pytest.raises(UnsafePath, match=r"refusing the progress log .*: .*runs is a symbolic link\."):
        RunLog.open(path, HEADER, state_dir=state)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    with RunLog.open(path, HEADER):  # a log the user named with --log may be reached through a link
        pass


def test_a_user_named_log_that_is_a_symlink_is_written_through(tmp_path: Path):
    real = tmp_path / "real.jsonl"
    link = tmp_path / "log.jsonl"
    link.symlink_to(real)
    with RunLog.open(link, HEADER) as log:
        log.append(entry(0))
    real.write_bytes(real.read_bytes() + b'{"index": 1, "sta')  # torn
    with RunLog.open(link, HEADER, match_keys=KEYS) as log:
        assert log.entries == [entry(0)]
        log.append(entry(1))
    assert link.is_symlink()
    assert read_log(real) == (HEADER, [entry(0), entry(1)])


def test_iter_log_streams_and_an_empty_file_starts_fresh(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"")  # e.g. created by the user for --log
    with RunLog.open(path, HEADER) as log:
        log.append(entry(0))
    records = progress_log.iter_log(path)
    assert next(records) == HEADER
    assert list(records) == [entry(0)]
    with pytest.raises(LogError, match="no such progress log"):
        next(progress_log.iter_log(tmp_path / "absent.jsonl"))

"""t360cli.runs: `t360 status` without LOG lists the runs in state_dir/runs (SPEC 10)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from t360cli.errors import LogError
from t360cli.runs import RunInfo, list_runs

HEADER = {"t360": "0.1.0", "kind": "activities", "files": [], "started_at": "2025-01-01T00:00:00Z"}


def entry(i: int, status: str = "acked") -> dict:
    return {"index": i, "rows": [[0, i + 2]], "records": 1, "sha256": "cc" * 32, "status": status}


def summary(exit_code: int, **counts: int) -> dict:
    return {
        "index": -1,
        "summary": {"kind": "activities", "rows_read": 10, "records_sent": 9, **counts, "exit_code": exit_code},
    }


def write_log(path: Path, *lines: dict, header: dict = HEADER, mtime: float | None = None) -> Path:
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in (header, *lines)))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_list_runs_states_newest_first(tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    t = time.time() - 1000
    command = dict(HEADER, command=["t360", "upload", "my deals.csv", "-m", "m.yaml"])
    write_log(runs / "complete.jsonl", entry(0, "failed"), entry(0), summary(0), header=command, mtime=t + 9)
    write_log(runs / "rejects.jsonl", entry(0), summary(1, rows_rejected=1), mtime=t + 8)
    write_log(runs / "failed.jsonl", entry(0), entry(1, "failed"), summary(4, batches_failed=1), mtime=t + 7)
    write_log(runs / "gave-up.jsonl", entry(0), summary(4), mtime=t + 6)  # batches never sent
    write_log(runs / "killed.jsonl", entry(0), entry(1), mtime=t + 5)  # no summary: kill -9
    write_log(runs / "ctrl-c.jsonl", entry(0), summary(130), mtime=t + 4)
    write_log(runs / "resumed-killed.jsonl", entry(0, "failed"), summary(4), entry(0), mtime=t + 3)
    (runs / "notes.txt").write_text("not a log")
    runs_info = list_runs(runs)
    assert [(r.name, r.state) for r in runs_info] == [
        ("complete", "complete"),
        ("rejects", "rejects"),
        ("failed", "incomplete"),
        ("gave-up", "incomplete"),
        ("killed", "interrupted"),
        ("ctrl-c", "interrupted"),
        ("resumed-killed", "interrupted"),
    ]
    first = runs_info[0]
    assert first == RunInfo(
        name="complete",
        path=runs / "complete.jsonl",
        state="complete",
        when=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t + 9)),
        kind="activities",
        started_at="2025-01-01T00:00:00Z",
        rows_read=10,
        records_sent=9,
        records_acknowledged=1,
        batches_acknowledged=1,
        batches_pending=0,
        exit_code=0,
        command="t360 upload 'my deals.csv' -m m.yaml",
    )
    killed = runs_info[4]
    assert (killed.rows_read, killed.records_sent, killed.exit_code, killed.records_acknowledged) == (
        None,
        None,
        None,
        2,
    )
    assert runs_info[2].batches_pending == 1 and runs_info[2].command is None


def test_list_runs_unreadable_logs_are_listed_not_raised(tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "garbage.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (runs / "empty.jsonl").write_bytes(b"")
    (runs / "folder.jsonl").mkdir()
    (runs / "link.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    os.mkfifo(runs / "fifo.jsonl")
    found = {r.name: r for r in list_runs(runs)}
    assert {name: r.state for name, r in found.items()} == dict.fromkeys(
        ["garbage", "empty", "folder", "link", "fifo"], "unreadable"
    )
    assert found["garbage"].reason is not None and found["garbage"].reason.startswith(
        f"{runs / 'garbage.jsonl'}, line 1: not valid JSON"
    )
    assert found["empty"].reason == f"{runs / 'empty.jsonl'}, line 1: no header line; the progress log is damaged."
    assert found["folder"].reason == f"{runs / 'folder.jsonl'}: not a file, so not a progress log."
    assert found["link"].reason == "a symbolic link (t360 does not follow links here)"
    assert list_runs(tmp_path / "absent") == []
    with pytest.raises(LogError, match=r"cannot list the runs in .*garbage\.jsonl \(Not a directory\)"):
        list_runs(runs / "garbage.jsonl")

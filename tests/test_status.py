"""`t360 status` (SPEC 10): one run from its log with the command that finishes it; no LOG: the runs.

The logs are written here line by line as the delivery writes them (header, batch entries,
summary), so each state is built exactly.
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
from conftest import cli
from typer.testing import CliRunner, Result

from t360cli.cli import app

ENV_VARS = ("T360_API_KEY", "T360_BASE_URL", "T360_CONFIG", "T360_STATE_DIR")


@pytest.fixture(autouse=True)
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def t360(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env=env)


def header(tmp: Path, **kw: Any) -> dict[str, Any]:
    return {
        "t360": "0.1.0",
        "kind": "activities",
        "files": [{"path": str(tmp / "d.csv"), "size": 1234, "sha256": "0" * 64}],
        "mapping": str(tmp / "m.yaml"),
        "mapping_sha256": "1" * 64,
        "batch_size": 20,
        "max_batch_bytes": 1_000_000,
        "host": "127.0.0.1",
        "base_url": "http://127.0.0.1:8360",
        "limit": None,
        "started_at": "2025-07-01T02:00:00+0000",
        **kw,
    }


def batch(index: int, status: str = "acked", records: int = 20, error: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": index, "status": status, "records": records, "error": error}
    if status != "acked":
        entry["pending"] = [[0, records]]
    return entry


def summary(**kw: Any) -> dict[str, Any]:
    base = {"kind": "activities", "rows_read": 60, "rows_rejected": 0, "records_sent": 60, "exit_code": 0}
    return {"index": -1, "summary": {**base, **kw}}


def write_log(path: Path, *lines: dict[str, Any], mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# -- t360 status LOG --------------------------------------------------------------------------


def test_interrupted_run_says_rerun_the_same_command_never_pending_or_replay(work: Path) -> None:
    command = ["t360", "upload", "d.csv", "-m", "m.yaml", "-c", "/etc/t360/config.yaml"]
    log = write_log(work / "run.jsonl", header(work, command=command), batch(0), batch(1))  # no summary: killed
    result = t360("status", "run.jsonl")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "state: interrupted" in lines
    assert "batches: 2 acknowledged (40 records)" in lines
    assert lines[-2:] == [
        "interrupted after 40 records acknowledged; rerun the same command to resume:",
        "  t360 upload d.csv -m m.yaml -c /etc/t360/config.yaml",
    ]
    assert "records pending" not in result.stdout and "replay" not in result.stdout
    data = json.loads(t360("status", str(log), "--json").stdout)
    assert (data["state"], data["finished"], data["command"]) == ("interrupted", False, shlex.join(command))


def test_a_summary_with_exit_130_or_batches_after_it_is_interrupted(work: Path) -> None:
    write_log(work / "a.jsonl", header(work), batch(0), summary(exit_code=130))
    write_log(work / "b.jsonl", header(work), batch(0), summary(), batch(1))  # a later run was killed
    for name in ("a.jsonl", "b.jsonl"):
        out = t360("status", name).stdout
        assert "state: interrupted" in out and "rerun the same command to resume" in out
        assert "0 records pending" not in out and "--failed" not in out


def test_incomplete_run_prints_the_rebuilt_command_and_the_failed_causes(work: Path) -> None:
    cause = "cannot connect to https://partners.example.com (connection refused)"
    write_log(
        work / "runs" / "d-1.jsonl",
        header(work, limit=100),
        batch(0),
        batch(1, "failed", error=cause),
        batch(2, "failed", error=cause),
        summary(exit_code=4, batches_failed=2, records_sent=20),
    )
    result = t360("status", "runs/d-1.jsonl")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rebuilt = shlex.join(["t360", "upload", str(work / "d.csv"), "-m", str(work / "m.yaml"), "--limit", "100", "--log"])
    assert lines[3:] == [
        "state: incomplete",
        "batches: 1 acknowledged, 2 failed (40 records pending)",
        "last run: exit 4, rows read 60, rejected 0, records sent 20",
        f"failed batches: 2 x {cause}",
        "to finish it (a rerun resumes):",
        f"  {rebuilt} runs/d-1.jsonl",
        "to re-send the failed batches: t360 replay runs/d-1.jsonl --failed",
    ]


def test_complete_and_rejects_runs_need_no_command(work: Path) -> None:
    write_log(work / "ok.jsonl", header(work), batch(0), summary())
    reasons = [{"reason": "Value: not a number", "count": 3, "first_file": "d.csv", "first_line": 7}]
    rejected = summary(exit_code=1, rows_rejected=3, rejects="r.csv", top_reject_reasons=reasons)
    write_log(work / "rej.jsonl", header(work), batch(0), rejected)
    ok = t360("status", "ok.jsonl")
    assert ok.exit_code == 0 and "state: complete" in ok.stdout and "t360 upload" not in ok.stdout
    rej = t360("status", "rej.jsonl").stdout.splitlines()
    assert "state: rejects" in rej
    assert rej[-2:] == [
        "reject reason: 3 x Value: not a number (first: d.csv line 7)",
        "delivery is complete; the rejected rows are in r.csv",
    ]
    assert json.loads(t360("status", "ok.jsonl", "--json").stdout)["command"] is None


@pytest.mark.parametrize(
    "content, problem",
    [
        ("garbage\n", "line 1: not valid JSON"),
        ('{"kind": "customers"}\n[1]\n', "line 2: not a batch entry"),
        ('{"kind": 7}\n', "line 1: the header's kind is not text"),
    ],
)
def test_a_malformed_log_is_one_sentence_naming_it(work: Path, content: str, problem: str) -> None:
    (work / "bad.jsonl").write_text(content, encoding="utf-8")
    result = cli("status", "bad.jsonl", cwd=work)  # the real script: no traceback
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: bad.jsonl, {problem}") and result.stderr.count("\n") == 1


# -- t360 status: the runs -------------------------------------------------------------------------


def runs_in(state: Path, work: Path) -> None:
    runs = state / "runs"
    write_log(runs / "old-1.jsonl", header(work), batch(0), summary(rows_read=20), mtime=1_700_000_000)
    write_log(runs / "mid-2.jsonl", header(work), batch(0), batch(1), mtime=1_700_000_100)
    write_log(
        runs / "new-3.jsonl",
        header(work, kind="customers"),
        batch(0),
        batch(1, "failed", error="HTTP 503"),
        summary(kind="customers", exit_code=4, batches_failed=1, rows_read=40),
        mtime=1_700_000_200,
    )


def test_no_log_lists_the_runs_newest_first_as_plain_lines(work: Path) -> None:
    runs_in(work / "state", work)
    result = t360("status", env={"T360_STATE_DIR": str(work / "state")})
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["name", "kind", "state", "when", "rows", "records"]
    assert [row[:3] for row in rows[1:]] == [
        ["new-3", "customers", "incomplete"],
        ["mid-2", "activities", "interrupted"],
        ["old-1", "activities", "complete"],
    ]
    assert [row[4:] for row in rows[1:]] == [["40", "20"], ["-", "40"], ["20", "20"]]
    listed = json.loads(t360("status", "--json", env={"T360_STATE_DIR": str(work / "state")}).stdout)
    assert [run["name"] for run in listed] == ["new-3", "mid-2", "old-1"]


def test_no_log_takes_the_state_dir_from_the_config(work: Path) -> None:
    runs_in(work / "elsewhere", work)
    (work / "c.yaml").write_text(f"state_dir: {work / 'elsewhere'}\n", encoding="utf-8")
    result = t360("status", "-c", "c.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].startswith("new-3 ")


def test_no_runs_yet_and_an_unreadable_log(work: Path) -> None:
    empty = t360("status")
    assert (empty.exit_code, empty.stdout) == (0, f"no runs in {Path('.t360') / 'runs'} yet.\n")
    write_log(work / ".t360" / "runs" / "ok-1.jsonl", header(work), batch(0), summary())
    (work / ".t360" / "runs" / "torn-2.jsonl").write_text("garbage\n", encoding="utf-8")
    result = t360("status")
    assert result.exit_code == 2  # it could not read everything it shows
    assert "torn-2" in result.stdout and "unreadable" in result.stdout
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {Path('.t360/runs/torn-2.jsonl')}, line 1: not valid JSON (")
    assert result.stderr.endswith("); the progress log is damaged.\n")

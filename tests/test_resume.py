"""Crashes and signals mid-upload (a real `t360 upload` process), then the resuming rerun."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import (
    API_KEY,
    DEPOSITS_MAPPING,
    T360,
    assert_no_key,
    cli,
    cli_env,
    counts_add_up,
    deposit_rows,
    deposits_csv,
    expected_deposit,
    mapping,
)

from t360cli.progress_log import read_log
from t360cli.sandbox import Faults

pytestmark = pytest.mark.usefixtures("clean_env")
ROWS, BATCH, CONCURRENCY = 400, 10, 2
TOTAL_BATCHES = ROWS // BATCH
DEADLINE_S = 30


def upload_args(tmp: Path, sb: Any) -> list[str]:
    return [
        "upload",
        "d.csv",
        "-m",
        str(tmp / "mapping.yaml"),
        "--base-url",
        sb.url,
        "--batch-size",
        str(BATCH),
        "--concurrency",
        str(CONCURRENCY),
        "--report",
        "r.json",
    ]


def batch_lines(log: Path | None) -> int:
    """Complete batch lines in the log so far (0 while it does not exist)."""
    if log is None or not log.exists():
        return 0
    done = log.read_bytes().split(b"\n")[:-1]  # the last piece may be torn
    return sum(1 for line in done[1:] if orjson.loads(line).get("index", -1) >= 0)


def find_log(tmp: Path) -> Path | None:
    logs = sorted((tmp / ".t360" / "runs").glob("*.jsonl")) if (tmp / ".t360" / "runs").exists() else []
    return logs[0] if logs else None


def start_slow_upload(tmp: Path, sb: Any, at_least: int) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `t360 upload` against a slow sandbox; return once `at_least` batch lines are logged."""
    sb.set_faults(Faults(latency_ms=40))
    deposits_csv(tmp / "d.csv", deposit_rows(ROWS))
    mapping(tmp, DEPOSITS_MAPPING)
    out, err = open(tmp / "out1.txt", "wb"), open(tmp / "err1.txt", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [*T360, *upload_args(tmp, sb)], cwd=tmp, stdout=out, stderr=err, env=cli_env({"T360_API_KEY": API_KEY})
    )
    out.close(), err.close()
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        log = find_log(tmp)
        if batch_lines(log) >= at_least:
            assert log is not None
            return proc, log
        try:
            proc.wait(timeout=0.02)  # the poll interval; an early exit is a failure below
        except subprocess.TimeoutExpired:
            continue
        break
    proc.kill()
    proc.wait()
    pytest.fail(
        f"the upload logged fewer than {at_least} batches in time "
        f"(exit {proc.returncode}): {(tmp / 'err1.txt').read_text()}"
    )


def acked(log: Path) -> set[int]:
    _, entries = read_log(log)
    return {e["index"] for e in entries if e["index"] >= 0 and e.get("status") == "acked"}


def assert_all_stored_once(sb: Any) -> None:
    rows = deposit_rows(ROWS)
    stored = sb.activities()
    assert sorted(stored, key=lambda a: a["eventid"]) == [expected_deposit(r) for r in rows]


def test_kill_9_then_rerun_resends_no_acknowledged_batch(tmp_path, sandbox) -> None:
    proc, log = start_slow_upload(tmp_path, sandbox, at_least=6)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL
    done = acked(log)
    assert len(done) >= 6 and len(done) < TOTAL_BATCHES
    sandbox.set_faults(Faults())
    before = sandbox.stats()["requests"]

    res = cli(*upload_args(tmp_path, sandbox), cwd=tmp_path, env={"T360_API_KEY": API_KEY})
    assert res.returncode == 0, res.stderr
    sent_by_rerun = sandbox.stats()["requests"] - before
    assert sent_by_rerun <= TOTAL_BATCHES - len(done)
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    assert report["batches_skipped"] == len(done) and counts_add_up(report)
    assert report["batches_sent"] == TOTAL_BATCHES - len(done) == sent_by_rerun
    assert_all_stored_once(sandbox)
    # only batches in flight at the kill may have reached the server twice
    assert sandbox.stats()["duplicates_ignored"] <= CONCURRENCY * BATCH
    assert acked(log) == set(range(TOTAL_BATCHES))
    assert_no_key(tmp_path, res.stdout, res.stderr)


def test_sigterm_exits_130_and_the_next_run_resumes(tmp_path, sandbox) -> None:
    proc, log = start_slow_upload(tmp_path, sandbox, at_least=4)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=DEADLINE_S) == 130
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""  # nothing torn: every line ended
    parsed = [orjson.loads(line) for line in lines[:-1]]
    batches = [e for e in parsed[1:] if e["index"] >= 0]
    assert all(e["status"] == "acked" and e["records"] == BATCH for e in batches), batches
    summary = parsed[-1]["summary"]
    assert summary["exit_code"] == 130 and summary["totals"]["acknowledged"] is None
    assert summary["batches_sent"] == len(batches) < TOTAL_BATCHES
    assert summary["batches_failed"] == 0  # a batch stopped before its first request is unsent
    assert sandbox.stats()["requests"] == len(batches)  # in-flight requests finished and were logged
    said = (tmp_path / "err1.txt").read_text()
    assert f"interrupted after {BATCH * len(batches)} records acknowledged; rerun the same command to resume" in said
    sandbox.set_faults(Faults())

    res = cli(*upload_args(tmp_path, sandbox), cwd=tmp_path, env={"T360_API_KEY": API_KEY})
    assert res.returncode == 0, res.stderr
    known = max(len(batches), summary["batches_total"])
    assert f"resuming {log.relative_to(tmp_path)}: {len(batches)} of {known} batches already acknowledged" in res.stderr
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    assert report["batches_skipped"] == len(batches) and counts_add_up(report)
    assert report["totals"]["acknowledged"] == report["totals"]["valid"]
    assert_all_stored_once(sandbox)
    assert sandbox.stats() == {"customers": 0, "activities": ROWS, "requests": TOTAL_BATCHES, "duplicates_ignored": 0}
    assert_no_key(tmp_path, res.stdout, res.stderr)


def test_a_second_ctrl_c_exits_at_once_and_in_flight_batches_are_sent_again(tmp_path, sandbox) -> None:
    """SPEC 10: the first Ctrl-C waits for the requests in flight; a second one does not."""
    latency_s = 20.0
    sandbox.set_faults(Faults(latency_ms=latency_s * 1000))
    deposits_csv(tmp_path / "d.csv", deposit_rows(ROWS))
    mapping(tmp_path, DEPOSITS_MAPPING)
    proc = subprocess.Popen(
        [*T360, *upload_args(tmp_path, sandbox)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cli_env({"T360_API_KEY": API_KEY}),
    )
    deadline = time.monotonic() + DEADLINE_S
    while sandbox.stats()["requests"] < CONCURRENCY and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)  # polling the sandbox, not waiting for it
    assert sandbox.stats()["requests"] == CONCURRENCY, "the upload did not get its requests in flight"
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)  # two signals sent back to back may merge into one in the kernel
    first_again = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130, err
    assert time.monotonic() - first_again < latency_s / 4  # did not wait for the server's answers
    log = find_log(tmp_path)
    assert log is not None and not (log.parent / (log.name + ".lock")).exists()
    assert batch_lines(log) == 0  # the requests in flight count as not acknowledged
    sandbox.set_faults(Faults())

    res = cli(*upload_args(tmp_path, sandbox), cwd=tmp_path, env={"T360_API_KEY": API_KEY}, timeout=DEADLINE_S * 2)
    assert res.returncode == 0, res.stderr
    assert_all_stored_once(sandbox)
    assert_no_key(tmp_path, res.stdout, res.stderr, err.decode())

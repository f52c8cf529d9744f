"""`t360 upload`, `replay` and `status` end to end over real HTTP against the sandbox.

Every test asserts what the sandbox stored, not what the client believes.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import (
    API_KEY,
    CUSTOMERS_MAPPING,
    DEPOSITS_MAPPING,
    assert_no_key,
    cli,
    counts_add_up,
    deposit_rows,
    deposits_csv,
    expected_deposit,
    mapping,
    settings_for,
    write,
)

from t360cli.errors import AuthRefused, EndpointFailed, UsageError
from t360cli.progress_log import LogLock, read_log
from t360cli.report import Report
from t360cli.run import RunOptions, upload
from t360cli.sandbox import Faults
from t360cli.tally import Counts

pytestmark = pytest.mark.usefixtures("clean_env")
KEY_ENV = {"T360_API_KEY": API_KEY}
GUIDE_ID = "fx_7c2d8f91-a344-4b12-9ad3-2ae195d49c12"


def run(
    tmp: Path,
    sb: Any,
    key_file: Path,
    csv_path: Path,
    mapping_path: Path,
    report: str | None = "report.json",
    **settings: Any,
) -> dict[str, Any]:
    opts = RunOptions(files=[str(csv_path)], mapping=str(mapping_path), report=str(tmp / report) if report else None)
    return upload(opts, settings_for(sb, key_file, **settings)).to_json()


def requests_seen(report: dict[str, Any]) -> int:
    return sum(report["http_status_counts"].values())


# --- exact payloads --------------------------------------------------------------------------


def test_deposits_are_stored_exactly_as_the_guide_shows(tmp_path, sandbox, key_file) -> None:
    src = write(
        tmp_path / "deposits.csv",
        "Txn ID,Login,Date,Amount,Ccy,Status\n"
        f'TX-9981422,{GUIDE_ID[3:]},2025-07-20 11:03:59,"1,000.00",usd,Approved\n'
        f"1235,{GUIDE_ID[3:]},2025-07-21T11:03:00Z,12.45,USD,Approved\n"
        "TX-3,5102345,2025-07-22 09:00,250.5,EUR,Pending\n"
        "TX-4,5102345,2025-07-22 10:00,-20.00,EUR,Approved\n"
        f"1235,{GUIDE_ID[3:]},2025-07-21T11:03:00Z,12.45,USD,Approved\n",
    )
    m = mapping(
        tmp_path, DEPOSITS_MAPPING.replace("kind: activities\n", "kind: activities\nwhere:\n  Status: [Approved]\n")
    )
    report = run(tmp_path, sandbox, key_file, src, m)

    assert sandbox.activities() == [
        {
            "customerid": GUIDE_ID,
            "eventname": "Deposit",
            "eventid": "TX-9981422",
            "createtime": "2025-07-20 11:03",
            "Value": "1000.00",
            "Currency": "USD",
        },
        {
            "customerid": GUIDE_ID,
            "eventname": "Deposit",
            "eventid": "1235",
            "createtime": "2025-07-21 11:03",
            "Value": "12.45",
            "Currency": "USD",
        },
        {
            "customerid": "fx_5102345",
            "eventname": "Deposit",
            "eventid": "TX-4",
            "createtime": "2025-07-22 10:00",
            "Value": "-20.00",
            "Currency": "EUR",
        },
    ]
    first = sandbox.activities()[0]
    assert list(first) == ["customerid", "eventname", "eventid", "createtime", "Value", "Currency"]
    assert sandbox.stats() == {"customers": 0, "activities": 3, "requests": 1, "duplicates_ignored": 0}
    assert report["exit_code"] == 0 and counts_add_up(report)
    assert (
        report["rows_read"],
        report["rows_valid"],
        report["rows_filtered"],
        report["rows_duplicate"],
        report["rows_rejected"],
    ) == (5, 3, 1, 1, 0)
    assert (
        report["records_valid"],
        report["records_sent"],
        report["batches_total"],
        report["batches_sent"],
        report["retries"],
    ) == (3, 3, 1, 1, 0)
    assert report["http_status_counts"] == {"200": 1} and report["rejects"] is None
    assert (
        report["totals"]["acknowledged"]
        == report["totals"]["valid"]
        == {"Deposit": {"USD": {"Value": "1012.45"}, "EUR": {"Value": "-20.00"}}}
    )
    assert orjson.loads((tmp_path / "report.json").read_bytes()) == report
    assert_no_key(tmp_path)


def test_customers_are_stored_exactly_as_the_guide_shows(tmp_path, sandbox, key_file) -> None:
    src = write(
        tmp_path / "customers.csv",
        "Login,Registered,Country,First Name,Last Name,Campaign\n"
        f"{GUIDE_ID[3:]},21/07/2025 08:46,ES,Maria,S,2001_1000_abcdefg\n"
        "0048812,04/03/2025 09:15,Germany,Lukas,Müller,campaign_7_aff_42_creative_b\n"
        "5102377,05/03/2025 14:30,MYS,Chen,,\n",
    )
    report = run(tmp_path, sandbox, key_file, src, mapping(tmp_path, CUSTOMERS_MAPPING))

    assert sandbox.customers() == [
        {
            "customerId": GUIDE_ID,
            "regtime": "2025-07-21 08:46",
            "country": "ES",
            "firstName": "Maria",
            "lastName": "S",
            "tracking_data": "2001_1000_abcdefg",
        },
        {
            "customerId": "fx_0048812",
            "regtime": "2025-03-04 09:15",
            "country": "DE",
            "firstName": "Lukas",
            "lastName": "Müller",
            "tracking_data": "campaign_7_aff_42_creative_b",
        },
        {"customerId": "fx_5102377", "regtime": "2025-03-05 14:30", "country": "MY", "firstName": "Chen"},
    ]
    assert sandbox.stats()["requests"] == 1
    assert report["exit_code"] == 0 and counts_add_up(report)
    assert (report["rows_read"], report["rows_valid"], report["records_sent"]) == (3, 3, 3)
    assert report["unattributed_customers"] == 1 and report["totals"] is None


def test_rejected_rows_are_not_sent_and_exit_1(tmp_path, sandbox, key_file) -> None:
    rows = deposit_rows(6)
    rows[2]["Amount"] = "12,34"
    rows[4]["Ccy"] = "XYZ"
    report = run(
        tmp_path,
        sandbox,
        key_file,
        deposits_csv(tmp_path / "d.csv", rows),
        mapping(tmp_path, DEPOSITS_MAPPING),
        batch_size=2,
    )
    good = [r for i, r in enumerate(rows) if i not in (2, 4)]
    assert sandbox.activities() == [expected_deposit(r) for r in good]
    assert report["exit_code"] == 1 and counts_add_up(report)
    assert (
        report["rows_valid"],
        report["rows_rejected"],
        report["records_sent"],
        report["batches_total"],
        report["batches_sent"],
    ) == (4, 2, 4, 2, 2)
    rejects = list(csv.DictReader(io.StringIO(Path(report["rejects"]).read_text("utf-8"))))
    assert [(r["source_line"], r["Txn ID"]) for r in rejects] == [("4", "TX-000003"), ("6", "TX-000005")]


# --- bad networks, throttling, splitting -----------------------------------------------------


def test_faults_every_record_delivered_exactly_once(tmp_path, sandbox, key_file) -> None:
    sandbox.set_faults(Faults(fail_rate=0.15, throttle_rate=0.10, retry_after=0, drop_rate=0.05, seed=42))
    rows = deposit_rows(400)
    report = run(
        tmp_path,
        sandbox,
        key_file,
        deposits_csv(tmp_path / "d.csv", rows),
        mapping(tmp_path, DEPOSITS_MAPPING),
        batch_size=10,
        max_attempts=30,
    )

    stored = sandbox.activities()
    assert sorted(a["eventid"] for a in stored) == [r["Txn ID"] for r in rows]
    assert sorted(stored, key=lambda a: a["eventid"]) == [expected_deposit(r) for r in rows]
    stats = sandbox.stats()
    assert stats["duplicates_ignored"] == 0  # no acknowledged batch was sent twice
    assert report["exit_code"] == 0 and counts_add_up(report)
    assert (report["records_sent"], report["batches_total"], report["batches_sent"], report["batches_failed"]) == (
        400,
        40,
        40,
        0,
    )
    # the seeded dice decide per request in arrival order: 40 successes cost these faults
    assert report["http_status_counts"] == {"200": 40, "503": 10, "429": 9, "dropped": 2}
    assert requests_seen(report) == stats["requests"]  # the client saw every answer the server gave
    assert report["retries"] == stats["requests"] - 40
    assert report["totals"]["acknowledged"] == report["totals"]["valid"]


def split_plan(sizes: list[int], limit: int) -> tuple[int, int]:
    """(413s, 200s) a body-size limit causes when halving: a body is 2 + sizes + commas."""

    def body(lo: int, hi: int) -> int:
        return 2 + sum(sizes[lo:hi]) + (hi - lo - 1)

    refused = ok = 0
    todo = [(0, len(sizes))]
    for _ in range(4 * len(sizes)):
        if not todo:
            break
        lo, hi = todo.pop()
        if body(lo, hi) > limit:
            refused += 1
            mid = (lo + hi) // 2
            todo += [(lo, mid), (mid, hi)]
        else:
            ok += 1
    assert not todo
    return refused, ok


def test_413_halves_batches_until_they_fit(tmp_path, sandbox, key_file) -> None:
    rows = deposit_rows(100)
    sizes = [len(orjson.dumps(expected_deposit(r))) for r in rows]
    limit = 2 + sum(sizes[:6]) + 5  # a 20-record batch is far above it; 5 records fit
    sandbox.set_faults(Faults(max_body_bytes=limit))
    report = run(
        tmp_path,
        sandbox,
        key_file,
        deposits_csv(tmp_path / "d.csv", rows),
        mapping(tmp_path, DEPOSITS_MAPPING),
        batch_size=20,
    )

    assert sorted(sandbox.activities(), key=lambda a: a["eventid"]) == [expected_deposit(r) for r in rows]
    plans = [split_plan(sizes[i : i + 20], limit) for i in range(0, 100, 20)]
    assert report["http_status_counts"] == {"413": sum(p[0] for p in plans), "200": sum(p[1] for p in plans)}
    assert sandbox.stats()["requests"] == requests_seen(report)
    assert report["retries"] == 0  # halves count as batches attempted, not retries
    assert report["exit_code"] == 0 and counts_add_up(report)
    assert (report["batches_sent"], report["records_sent"], report["rows_rejected"]) == (5, 100, 0)


def test_a_poison_record_is_refused_and_the_rest_of_its_batch_delivered(tmp_path, sandbox, key_file) -> None:
    rows = deposit_rows(50)
    rows[27]["Amount"] = "666.66"
    sandbox.set_faults(Faults(poison="666.66"))
    report = run(
        tmp_path,
        sandbox,
        key_file,
        deposits_csv(tmp_path / "d.csv", rows),
        mapping(tmp_path, DEPOSITS_MAPPING),
        batch_size=20,
    )

    good = [r for i, r in enumerate(rows) if i != 27]
    assert sorted(sandbox.activities(), key=lambda a: a["eventid"]) == [expected_deposit(r) for r in good]
    assert report["exit_code"] == 1 and counts_add_up(report)
    assert (
        report["rows_read"],
        report["rows_valid"],
        report["rows_rejected"],
        report["records_valid"],
        report["records_sent"],
        report["batches_sent"],
        report["batches_failed"],
    ) == (50, 49, 1, 49, 49, 3, 0)
    assert report["http_status_counts"]["400"] == 5  # 20 -> 10 -> 5 -> 3 -> 2 -> 1
    assert report["retries"] == 0
    rejects = list(csv.DictReader(io.StringIO(Path(report["rejects"]).read_text("utf-8"))))
    assert rejects == [
        {
            "source_file": str(tmp_path / "d.csv"),
            "source_line": "29",
            "reason": "server refused (HTTP 400): record 1: refused value '666.66' in Value",
            **rows[27],
        }
    ]
    valid = report["totals"]["valid"]["Deposit"]
    stored = sum(float(a["Value"]) for a in sandbox.activities() if a["Currency"] == rows[27]["Ccy"])
    assert float(valid[rows[27]["Ccy"]]["Value"]) == pytest.approx(stored)
    assert report["totals"]["acknowledged"] == report["totals"]["valid"]
    _, entries = read_log(Path(report["log"]))
    assert [e.get("refused") for e in entries if e.get("refused")] == [
        [[7, 400, "record 1: refused value '666.66' in Value"]]
    ]
    assert_no_key(tmp_path)


class Recorder:
    """An Observer that keeps a list (STYLE, "The house": tests implement it with a list)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def start(self, title: str, dry_run: bool = False, estimate_rows: Any = None) -> None:
        self.events.append(("start", (title, dry_run)))

    def progress(self, counts: Counts) -> None:
        self.events.append(("progress", counts.rows_read))

    def retry(self, label: str) -> None:
        self.events.append(("retry", label))

    def note(self, text: str) -> None:
        self.events.append(("note", text))

    def finish(self, report: Report) -> None:
        self.events.append(("finish", report))


def test_the_observer_is_told_and_the_report_is_returned(tmp_path, sandbox, key_file) -> None:
    src = deposits_csv(tmp_path / "d.csv", deposit_rows(30))
    opts = RunOptions(files=[str(src)], mapping=str(mapping(tmp_path, DEPOSITS_MAPPING)))
    seen = Recorder()
    report = upload(opts, settings_for(sandbox, key_file), seen)
    assert isinstance(report, Report) and report.exit_code == 0 and not report.dry_run
    assert seen.events[0] == ("start", (f"uploading {src}", False))
    assert ("progress", 30) in seen.events
    assert seen.events[-1] == ("finish", report)
    assert report.to_json()["records_sent"] == report.counts.records_sent == 30


# --- the key -----------------------------------------------------------------------------


def test_wrong_key_stops_after_the_first_answers_library(tmp_path, sandbox, key_file) -> None:
    key_file.write_text("wrong-key-0000\n")
    m = mapping(tmp_path, DEPOSITS_MAPPING)
    src = deposits_csv(tmp_path / "d.csv", deposit_rows(200))
    with pytest.raises(AuthRefused, match="refused the API key"):
        run(tmp_path, sandbox, key_file, src, m, batch_size=10, concurrency=4)
    stats = sandbox.stats()
    assert 1 <= stats["requests"] <= 4 and stats["activities"] == 0
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["exit_code"] == 3 and counts_add_up(report)
    assert report["batches_sent"] == 0 and report["records_sent"] == 0
    assert report["http_status_counts"] == {"401": stats["requests"]}
    assert report["totals"]["acknowledged"] is None  # stopped: unknown, rerun to finish
    _, entries = read_log(Path(report["log"]))
    failed = [e for e in entries if e["index"] >= 0]
    assert failed and all(e["status"] == "failed" for e in failed)
    assert all("refused the API key" in e["error"] for e in failed)
    assert sum(e["attempts"] for e in failed) == stats["requests"]
    assert "wrong-key-0000" not in (tmp_path / "report.json").read_text()


def test_wrong_key_via_cli_exits_3_and_writes_the_report(tmp_path, sandbox) -> None:
    m = mapping(tmp_path, DEPOSITS_MAPPING)
    deposits_csv(tmp_path / "d.csv", deposit_rows(200))
    res = cli(
        "upload",
        "d.csv",
        "-m",
        str(m),
        "--base-url",
        sandbox.url,
        "--batch-size",
        "10",
        "--concurrency",
        "3",
        "--report",
        "r.json",
        cwd=tmp_path,
        env={"T360_API_KEY": "wrong-key-1111"},
    )
    assert res.returncode == 3, res.stderr
    assert "the server refused the API key (HTTP 401)" in res.stderr
    assert "$T360_API_KEY" in res.stderr and "wrong-key-1111" not in res.stdout + res.stderr
    stats = sandbox.stats()
    assert 1 <= stats["requests"] <= 3 and stats["activities"] == 0
    report = orjson.loads((tmp_path / "r.json").read_bytes())
    assert report["exit_code"] == 3 and report["records_sent"] == 0
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"wrong-key-1111" not in path.read_bytes(), path


def test_plain_http_to_a_remote_host_is_refused_before_any_request(tmp_path, key_file, monkeypatch) -> None:
    src = deposits_csv(tmp_path / "d.csv", deposit_rows(3))
    m = mapping(tmp_path, DEPOSITS_MAPPING)
    res = cli("upload", "d.csv", "-m", str(m), "--base-url", "http://example.invalid", cwd=tmp_path, env=KEY_ENV)
    assert res.returncode == 2
    assert "refusing plain http to example.invalid" in res.stderr
    assert not (tmp_path / ".t360").exists()  # no log: refused before anything started

    async def no_network(*a: Any, **kw: Any) -> None:
        raise AssertionError("a request was attempted")

    monkeypatch.setattr(httpx.AsyncClient, "send", no_network)
    settings = settings_for(type("SB", (), {"url": "http://example.invalid:8080"})(), key_file)
    with pytest.raises(UsageError, match="refusing plain http to example.invalid"):
        upload(RunOptions(files=[str(src)], mapping=str(m)), settings)
    assert not (tmp_path / ".t360").exists()


# --- failed batches, replay, status ---------------------------------------------------------


def test_failed_run_then_replay_failed_delivers_the_rest(tmp_path, sandbox, key_file) -> None:
    rows = deposit_rows(60)
    m = mapping(tmp_path, DEPOSITS_MAPPING)
    src = deposits_csv(tmp_path / "d.csv", rows)
    sandbox.set_faults(Faults(fail_rate=1.0))
    with pytest.raises(EndpointFailed) as info:  # the third failed batch in a row stops the run (SPEC 10)
        run(tmp_path, sandbox, key_file, src, m, batch_size=20, max_attempts=2, concurrency=1)
    assert str(info.value) == (
        f"{sandbox.url}/tracking/events/activities answered HTTP 503; 3 batches failed in a row, "
        "nothing more was sent; rerun the same command to resume."
    )
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert report["exit_code"] == 4 and counts_add_up(report)
    assert (report["batches_failed"], report["batches_sent"], report["records_sent"]) == (3, 0, 0)
    assert report["http_status_counts"] == {"503": 6} and report["retries"] == 3
    assert report["totals"]["acknowledged"] is None  # stopped: unknown, rerun to finish
    assert sandbox.stats()["activities"] == 0
    log = report["log"]

    before = cli("status", log, cwd=tmp_path)
    assert before.returncode == 0
    assert "0 acknowledged, 3 failed (60 records pending)" in before.stdout
    assert f"t360 replay {log} --failed" in before.stdout

    sandbox.set_faults(Faults())
    res = cli("replay", log, "--failed", "--report", "replay.json", cwd=tmp_path, env=KEY_ENV)
    assert res.returncode == 0, res.stderr
    assert sorted(sandbox.activities(), key=lambda a: a["eventid"]) == [expected_deposit(r) for r in rows]
    assert sandbox.stats()["requests"] == 6 + 3
    replayed = orjson.loads((tmp_path / "replay.json").read_bytes())
    assert (replayed["exit_code"], replayed["batches_sent"], replayed["records_sent"]) == (0, 3, 60)

    after = cli("status", log, cwd=tmp_path)
    assert "3 acknowledged, 0 failed (0 records pending)" in after.stdout
    assert "last run: exit 0" in after.stdout
    as_json = cli("status", log, "--json", cwd=tmp_path)
    data = orjson.loads(as_json.stdout)
    assert (
        data["finished"],
        data["batches_acknowledged_in_log"],
        data["batches_failed_in_log"],
        data["records_pending"],
        data["exit_code"],
    ) == (True, 3, 0, 0, 0)

    again = cli("replay", log, "--failed", cwd=tmp_path, env=KEY_ENV)
    assert again.returncode == 0 and sandbox.stats()["requests"] == 9  # nothing left to send
    assert_no_key(
        tmp_path, before.stdout, res.stdout, res.stderr, after.stdout, as_json.stdout, again.stdout, again.stderr
    )


def test_replay_after_the_input_changed_is_refused(tmp_path, sandbox, key_file) -> None:
    m = mapping(tmp_path, DEPOSITS_MAPPING)
    src = deposits_csv(tmp_path / "d.csv", deposit_rows(30))
    sandbox.set_faults(Faults(fail_rate=1.0))
    report = run(tmp_path, sandbox, key_file, src, m, max_attempts=1)
    assert report["batches_failed"] == 2
    sandbox.set_faults(Faults())
    deposits_csv(src, deposit_rows(30, start=2))
    sent = sandbox.stats()["requests"]
    res = cli("replay", report["log"], "--failed", cwd=tmp_path, env=KEY_ENV)
    assert res.returncode == 2
    assert f"replay refused: input {src} changed since the run" in res.stderr
    assert sandbox.stats()["requests"] == sent and sandbox.stats()["activities"] == 0


# --- customers: order, lock --------------------------------------------------------------------


def test_the_later_values_of_a_customer_win_with_concurrency(tmp_path, sandbox, key_file) -> None:
    lines = ["Login,Registered,Country,First Name,Last Name,Campaign"]
    for i in range(60):  # two customers alternating: their updates are in flight together
        lines.append(f"{i % 2},01/07/2025 10:00,ES,Name{i},Last{i},camp_{i}")
    src = write(tmp_path / "c.csv", "\n".join(lines) + "\n")
    sandbox.set_faults(Faults(fail_rate=0.3, latency_ms=2, seed=5))
    report = run(
        tmp_path,
        sandbox,
        key_file,
        src,
        mapping(tmp_path, CUSTOMERS_MAPPING),
        batch_size=1,
        concurrency=4,
        max_attempts=30,
    )
    assert report["exit_code"] == 0 and counts_add_up(report)
    assert report["http_status_counts"]["503"] > 0
    final = {c["customerId"]: c for c in sandbox.customers()}
    assert {k: (v["firstName"], v["tracking_data"]) for k, v in final.items()} == {
        "fx_0": ("Name58", "camp_58"),
        "fx_1": ("Name59", "camp_59"),
    }


def test_a_second_upload_while_the_log_is_locked_exits_2_naming_the_pid(tmp_path, sandbox) -> None:
    m = mapping(tmp_path, DEPOSITS_MAPPING)
    deposits_csv(tmp_path / "d.csv", deposit_rows(5))
    log = tmp_path / "run.jsonl"
    lock = LogLock(log).acquire()
    try:
        res = cli(
            "upload", "d.csv", "-m", str(m), "--base-url", sandbox.url, "--log", str(log), cwd=tmp_path, env=KEY_ENV
        )
    finally:
        lock.release()
    assert res.returncode == 2
    assert f"in use by process {os.getpid()}" in res.stderr
    assert sandbox.stats()["requests"] == 0
    ok = cli("upload", "d.csv", "-m", str(m), "--base-url", sandbox.url, "--log", str(log), cwd=tmp_path, env=KEY_ENV)
    assert ok.returncode == 0 and sandbox.stats()["activities"] == 5
    assert_no_key(tmp_path, res.stdout, res.stderr, ok.stdout, ok.stderr)

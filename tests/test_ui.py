"""The Terminal: plain lines off a terminal, a table on one, silence with quiet, errors on stderr."""

from __future__ import annotations

import io
import re
from dataclasses import fields
from typing import Any

import pytest

from t360cli.report import Report
from t360cli.tally import Counts
from t360cli.ui import PLAIN_EVERY_S, Terminal

COUNT_FIELDS = {f.name for f in fields(Counts)}

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def report(**kw: Any) -> Report:
    base = {
        "kind": "activities",
        "dry_run": False,
        "files": ["a.csv"],
        "rows_read": 1234,
        "rows_valid": 1200,
        "rows_filtered": 20,
        "rows_rejected": 9,
        "rows_duplicate": 5,
        "records_valid": 1200,
        "records_sent": 1190,
        "batches_total": 3,
        "batches_sent": 2,
        "batches_failed": 1,
        "batches_skipped": 0,
        "retries": 4,
        "http_status_counts": {"200": 2, "503": 5},
        "unattributed_customers": None,
        "log": ".t360/runs/a-1.jsonl",
        "rejects": ".t360/runs/a-1.rejects.csv",
        "duration_s": 1.5,
        "exit_code": 1,
        "totals": None,
    }
    values = {**base, **kw}
    counted = {name: values.pop(name) for name in list(values) if name in COUNT_FIELDS}
    return Report(counts=Counts(**counted), **values)


def make(is_tty: bool, **kw: Any) -> tuple[Terminal, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Terminal(out=out, err=err, is_tty=is_tty, width=100, **kw), out, err


def test_plain_lines_off_a_terminal() -> None:
    term, out, err = make(False)
    term.start("uploading a.csv")
    term.progress(Counts(rows_read=10))  # less than 10 s since start: no line
    term.finish(report())
    lines = out.getvalue().splitlines()
    assert lines[0] == "t360: uploading a.csv"
    assert lines[1] == "t360: upload of activities finished, exit 1"
    assert all(line.startswith("t360: ") for line in lines)
    for expected in (
        "t360: rows read: 1,234",
        "t360: valid: 1,200",
        "t360: rejected: 9",
        "t360: filtered (where): 20",
        "t360: duplicates skipped: 5",
        "t360: records sent: 1,190",
        "t360: batches failed: 1",
        "t360: retries: 4",
        "t360: HTTP statuses: 200: 2, 503: 5",
        "t360: rejects: .t360/runs/a-1.rejects.csv",
        "t360: log: .t360/runs/a-1.jsonl",
        "t360: time: 1.50 s",
    ):
        assert expected in lines
    assert not ANSI.search(out.getvalue())
    assert err.getvalue() == ""


def test_plain_progress_line_every_ten_seconds() -> None:
    term, out, _ = make(False)
    term.start("uploading a.csv")
    term.progress(Counts(rows_read=5, rows_rejected=1, records_sent=3))
    assert out.getvalue().count("\n") == 1
    term.last_plain -= PLAIN_EVERY_S + 0.1  # as if 10 s had passed
    term.progress(Counts(rows_read=5, rows_rejected=1, records_sent=3))
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("t360: rows 5  rejected 1  sent 3  requests 0  retries 0")


def test_dry_run_summary_leaves_out_delivery_counts() -> None:
    term, out, _ = make(False)
    term.start("validating a.csv", dry_run=True)
    term.finish(report(dry_run=True, exit_code=0, log=None, unattributed_customers=3, kind="customers"))
    text = out.getvalue()
    assert "t360: dry run of customers finished, exit 0" in text
    assert "t360: customers without tracking_data: 3" in text
    for hidden in ("records sent", "batches acknowledged", "retries", "log:"):
        assert hidden not in text


def test_table_on_a_terminal_holds_the_counts() -> None:
    term, out, _ = make(True)
    assert term.out.is_terminal and term.out.width == 100
    term.start("uploading a.csv")
    term.progress(Counts(rows_read=10))
    term.finish(report())
    text = ANSI.sub("", out.getvalue())
    assert "t360 upload: activities (exit 1)" in text
    rows = {re.sub(r"\s+", " ", line.strip(" │|┃")).strip() for line in text.splitlines()}
    for label, value in (
        ("rows read", "1,234"),
        ("valid", "1,200"),
        ("rejected", "9"),
        ("records sent", "1,190"),
        ("batches failed", "1"),
    ):
        assert any(row.startswith(label) and row.endswith(value) for row in rows), (label, text)
    assert "t360: rows read" not in text  # no plain lines on a terminal
    assert "╭" in text or "┏" in text or "│" in text  # a drawn table, not lines


def test_file_names_are_not_markup() -> None:
    for tty in (False, True):
        term, out, err = make(tty)
        term.start("validating [bold]x[/bold].csv", dry_run=True)
        term.note("setting state_dir = '/tmp/[/x]' (command line)")
        term.finish(report(rejects="out/[red]r[/red].csv"))
        assert "[red]r[/red].csv" in ANSI.sub("", out.getvalue())
        assert "[/x]" in err.getvalue()
        if not tty:
            assert "t360: validating [bold]x[/bold].csv" in out.getvalue()


def test_quiet_prints_nothing() -> None:
    for tty in (False, True):
        term, out, err = make(tty, quiet=True)
        term.start("uploading a.csv")
        term.progress(Counts(rows_read=10))
        term.last_plain -= PLAIN_EVERY_S + 1
        term.progress(Counts(rows_read=20))
        term.retry("HTTP 503")
        term.finish(report())
        assert out.getvalue() == "" and err.getvalue() == ""


def test_errors_go_to_stderr_on_one_line() -> None:
    term, out, err = make(False, quiet=True)
    message = "deposits.yaml, line 7: [customerId] is the customers spelling; " + "x" * 150
    term.error(message)
    assert out.getvalue() == ""
    assert err.getvalue() == f"error: {message}\n"  # not wrapped at 100 columns, brackets kept


def test_retry_counts_and_verbose_line() -> None:
    term, out, _ = make(False, verbose=True)
    term.retry("HTTP 429")
    term.retry("timeout")
    assert term.retries == 2
    assert out.getvalue().splitlines() == ["t360: retrying after HTTP 429", "t360: retrying after timeout"]
    quiet_term, quiet_out, _ = make(False)
    quiet_term.retry("HTTP 429")
    assert quiet_term.retries == 1 and quiet_out.getvalue() == ""


def test_print_json_writes_raw_text() -> None:
    term, out, _ = make(True)
    term.print_json('{"a": "[b]"}')
    assert out.getvalue() == '{"a": "[b]"}\n'


@pytest.mark.parametrize("is_tty", [False, True])
def test_is_tty_defaults_to_the_stream(is_tty: bool) -> None:
    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return is_tty

    assert Terminal(out=Stream(), err=io.StringIO()).is_tty is is_tty


# -- SPEC 10: the summary says why: top reject reasons and the causes of failed batches ----------------


def report_with_reasons() -> Report:
    r = report(failed_causes={"HTTP 503": 1, "cannot connect to https://x.example (connection refused)": 3})
    for line in range(2, 43):
        r.counts.reject_reasons.add(
            f"createtime: '03/04/{line}' is not an ISO 8601 date or time; set format: in the mapping", "deals.csv", line
        )
    r.counts.reject_reasons.add(
        "Value: 'abc' is not a number; tracking_data: 57 characters, at most 50", "deals.csv", 9
    )
    return r


WHY = [
    "reject reason: 41 x createtime: not an ISO 8601 date or time; set format: (first: deals.csv line 2)",
    "reject reason: 1 x Value: not a number (first: deals.csv line 9)",
    "reject reason: 1 x tracking_data: more than 50 characters (first: deals.csv line 9)",
    "failed batches: 3 x cannot connect to https://x.example (connection refused)",
    "failed batches: 1 x HTTP 503",
]


def test_plain_summary_ends_with_reasons_and_failed_causes() -> None:
    term, out, _ = make(False)
    term.finish(report_with_reasons())
    assert out.getvalue().splitlines()[-5:] == [f"t360: {line}" for line in WHY]


def test_table_summary_is_followed_by_reasons_and_failed_causes() -> None:
    term, out, _ = make(True)
    term.finish(report_with_reasons())
    assert ANSI.sub("", out.getvalue()).splitlines()[-5:] == WHY
    assert term.report is not None  # kept for `--report -`


def test_runs_table_on_a_terminal() -> None:
    from pathlib import Path

    from t360cli.runs import RunInfo

    runs = [
        RunInfo(
            "deals-1", Path("deals-1.jsonl"), "rejects", "2025-07-01T02:00:00+0000", kind="activities", rows_read=41
        ),
        RunInfo("x-2", Path("x-2.jsonl"), "unreadable", "2025-06-30T02:00:00+0000", reason="no header line"),
    ]
    term, out, _ = make(True)
    term.show_runs(Path(".t360/runs"), runs, as_json=False)
    text = ANSI.sub("", out.getvalue())
    assert "t360 runs in .t360/runs (newest first)" in text
    assert "deals-1" in text and "rejects" in text and "unreadable (no header line)" in text
    assert text.index("deals-1") < text.index("x-2")

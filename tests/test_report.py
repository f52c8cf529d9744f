"""The rejects writer and control totals (SPEC 5, 7, 9)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from t360cli.report import RejectsWriter
from t360cli.tally import Totals


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

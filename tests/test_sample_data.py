"""The sample exports validate exactly as t360cli/sample_data/README.md says.

Runs the installed CLI (`t360 validate FILE -m MAPPING --report R`) on each sample file
and checks the report's counts, control totals, and which source lines were rejected for
which field.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "t360cli" / "sample_data"
T360 = Path(sys.executable).parent / "t360"


@dataclass(frozen=True)
class Expect:
    file: str
    mapping: str
    valid: int
    rejected: int
    filtered: int
    duplicate: int
    records: int
    rejects: dict[int, tuple[str, ...]]  # source line -> texts its reason contains (any case)
    totals: dict = field(default_factory=dict)  # {eventname: {Currency: {field: sum}}}
    extra: dict = field(default_factory=dict)  # other report keys and their values

    @property
    def read(self) -> int:
        return self.valid + self.rejected + self.filtered + self.duplicate


CASES = [
    Expect(
        "customers.csv",
        "customers.yaml",
        valid=32,
        rejected=4,
        filtered=3,
        duplicate=1,
        records=32,
        rejects={
            17: ("tracking_data: 57 characters, at most 50",),
            20: ("customerId",),
            25: ("regtime",),
            28: ("country", "Atlantis"),
        },
        extra={"unattributed_customers": 3, "totals": None, "kind": "customers"},
    ),
    Expect(
        "deposits.xlsx",
        "deposits.yaml",
        valid=28,
        rejected=7,
        filtered=4,
        duplicate=1,
        records=28,
        rejects={
            7: ("Value",),
            11: ("Currency", "USDT"),
            14: ("createtime",),
            19: ("customerid",),
            22: ("createtime",),
            26: ("deposit_type", "PAYPAL"),
            38: ("eventid",),
        },
        totals={"Deposit": {"EUR": {"Value": "46110.57"}, "USD": {"Value": "18366.41"}, "GBP": {"Value": "1880.70"}}},
    ),
    Expect(
        "withdrawals.csv",
        "withdrawals.yaml",
        valid=26,
        rejected=5,
        filtered=4,
        duplicate=1,
        records=26,
        rejects={8: ("Value",), 10: ("Currency",), 13: ("customerid",), 15: ("createtime",), 27: ("eventid",)},
        totals={
            "Withdrawal": {
                "EUR": {"Value": "5710.00"},
                "USD": {"Value": "6250.00"},
                "GBP": {"Value": "200.00"},
                "AUD": {"Value": "2400.00"},
                "JPY": {"Value": "70000"},
            }
        },
    ),
    Expect(
        "daily_trading.csv",
        "daily_stats.yaml",
        valid=37,
        rejected=6,
        filtered=3,
        duplicate=1,
        records=37,
        rejects={
            7: ("Lots",),
            10: ("Trades",),
            29: ("Product", "Bonds"),
            31: ("customerid",),
            39: ("createtime",),
            48: ("eventid",),
        },
        totals={"DailyStats": {"USD": {"Lots": "498.29", "Volume": "62892320.00", "Rebate": "848.59"}}},
    ),
    Expect(
        "ib_rebates.jsonl",
        "ib_rebates.yaml",
        valid=22,
        rejected=6,
        filtered=3,
        duplicate=1,
        records=22,
        rejects={
            3: ("Value",),
            7: ("Currency",),
            10: ("customerid",),
            13: ("JSON",),
            15: ("createtime",),
            27: ("eventid",),
        },
        totals={"Rebate": {"USD": {"Value": "766.36", "Lots": "109.48"}}},
    ),
    Expect(
        "mt_deals.csv",
        "mt_deals.yaml",
        valid=10,
        rejected=3,
        filtered=16,
        duplicate=1,
        records=10,
        rejects={9: ("createtime", "2025.06.31"), 14: ("customerid",), 25: ("eventid", "mt_4501206")},
        totals={"Lots": {"USD": {"Value": "5.95", "profit": "564.75"}, "EUR": {"Value": "1.30", "profit": "-18.50"}}},
    ),
    Expect(
        "deposits_report.xlsx",
        "deposits_report.yaml",
        valid=15,
        rejected=2,
        filtered=2,
        duplicate=1,
        records=15,
        rejects={9: ("customerid",), 14: ("Currency", "EURO")},
        totals={"Deposit": {"EUR": {"Value": "7843.25"}, "USD": {"Value": "1370.70"}, "GBP": {"Value": "1025.62"}}},
    ),
]


def validate(case: Expect, tmp: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `t360 validate` on one sample; the process and its JSON report."""
    report = tmp / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("T360_")}
    env["T360_STATE_DIR"] = str(tmp / "state")
    proc = subprocess.run(
        [str(T360), "validate", str(SAMPLE / case.file), "-m", str(SAMPLE / case.mapping), "--report", str(report)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.exists(), f"no report; exit {proc.returncode}; stderr:\n{proc.stderr[-2000:]}"
    return proc, json.loads(report.read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Expect], tuple]:
    """`t360 validate` on a sample, run once per module and file (on first use)."""
    done: dict[str, tuple] = {}

    def get(case: Expect) -> tuple[subprocess.CompletedProcess, dict]:
        if case.file not in done:
            done[case.file] = validate(case, tmp_path_factory.mktemp(case.file.split(".")[0]))
        return done[case.file]

    return get


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_counts(case: Expect, run: Callable) -> None:
    proc, report = run(case)
    got = {
        k: report[k]
        for k in ("rows_read", "rows_valid", "rows_rejected", "rows_filtered", "rows_duplicate", "records_valid")
    }
    assert got == {
        "rows_read": case.read,
        "rows_valid": case.valid,
        "rows_rejected": case.rejected,
        "rows_filtered": case.filtered,
        "rows_duplicate": case.duplicate,
        "records_valid": case.records,
    }
    assert report["dry_run"] is True
    assert proc.returncode == report["exit_code"] == 1  # some rows were rejected
    for key, value in case.extra.items():
        assert report[key] == value, key


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_rejected_lines_and_reasons(case: Expect, run: Callable) -> None:
    _, report = run(case)
    with open(report["rejects"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0])[:3] == ["source_file", "source_line", "reason"]
    reasons = {int(r["source_line"]): r["reason"] for r in rows}
    assert sorted(reasons) == sorted(case.rejects)
    for line, needles in case.rejects.items():
        for needle in needles:
            assert needle.lower() in reasons[line].lower(), (line, reasons[line])


@pytest.mark.parametrize("case", [c for c in CASES if c.totals], ids=lambda c: c.file)
def test_control_totals(case: Expect, run: Callable) -> None:
    _, report = run(case)
    valid = report["totals"]["valid"]
    got = {
        ev: {ccy: {f: Decimal(s) for f, s in sums.items()} for ccy, sums in per.items()} for ev, per in valid.items()
    }
    want = {
        ev: {ccy: {f: Decimal(s) for f, s in sums.items()} for ccy, sums in per.items()}
        for ev, per in case.totals.items()
    }
    assert got == want

"""Shared fixtures: a sandbox over real HTTP, a clean environment, small inputs and mappings."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from t360cli.config import Settings
from t360cli.sandbox import Sandbox, serve_in_thread

API_KEY = "test-key-9f8e7d6c"
REPO = Path(__file__).resolve().parents[1]
T360 = [sys.executable, "-m", "t360cli"]

DEPOSITS_MAPPING = """\
kind: activities
fields:
  customerid: {template: "fx_{Login}"}
  eventname: {value: Deposit}
  eventid: "Txn ID"
  createtime: {column: Date, type: datetime}
  Value: {column: Amount, type: decimal}
  Currency: {column: Ccy, type: currency}
"""

CUSTOMERS_MAPPING = """\
kind: customers
fields:
  customerId: {template: "fx_{Login}"}
  regtime: {column: Registered, type: datetime, format: "%d/%m/%Y %H:%M"}
  country: {column: Country, type: country}
  firstName: First Name
  lastName: Last Name
  tracking_data: Campaign
"""


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No T360_* variable leaks in; the working directory (and so .t360/) is tmp_path."""
    import os

    for name in list(os.environ):
        if name.startswith("T360_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox on 127.0.0.1, any free port, SQLite in tmp_path; closed on teardown."""
    sb = serve_in_thread(port=0, db=tmp_path / "sandbox.db", api_key=API_KEY)
    try:
        yield sb
    finally:
        sb.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api.key"
    path.write_text(API_KEY + "\n", encoding="utf-8")
    return path


def settings_for(sb: Sandbox, key_file: Path, **kw: Any) -> Settings:
    """Settings pointing at the sandbox, with fast retries unless told otherwise."""
    base: dict[str, Any] = dict(
        base_url=sb.url,
        api_key_file=str(key_file),
        state_dir=".t360",
        batch_size=20,
        concurrency=4,
        max_attempts=8,
        backoff_initial_s=0.001,
        backoff_max_s=0.01,
        timeout_s=10,
    )
    base.update(kw)
    return Settings(**base)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def deposit_rows(n: int, start: int = 1) -> list[dict[str, str]]:
    """n deposit rows as the export holds them (each with its own Txn ID)."""
    ccys = ("USD", "EUR", "GBP")
    return [
        {
            "Txn ID": f"TX-{i:06d}",
            "Login": f"{5100000 + i % 37}",
            "Date": f"2025-07-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:59",
            "Amount": f"{i}.{i % 100:02d}",
            "Ccy": ccys[i % 3],
        }
        for i in range(start, start + n)
    ]


def deposits_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    header = "Txn ID,Login,Date,Amount,Ccy"
    lines = [",".join(r[c] for c in header.split(",")) for r in rows]
    return write(path, "\n".join([header, *lines]) + "\n")


def expected_deposit(row: dict[str, str]) -> dict[str, str]:
    """The record the guide's Deposit example shape says this row becomes."""
    return {
        "customerid": f"fx_{row['Login']}",
        "eventname": "Deposit",
        "eventid": row["Txn ID"],
        "createtime": row["Date"][:16],
        "Value": row["Amount"],
        "Currency": row["Ccy"],
    }


def mapping(tmp: Path, text: str, name: str = "mapping.yaml") -> Path:
    return write(tmp / name, text)


def counts_add_up(report: dict[str, Any]) -> bool:
    unchanged = report.get("rows_unchanged") or 0  # SPEC 13: the ledger's skips join the identity
    return report["rows_read"] == (
        report["rows_valid"] + report["rows_rejected"] + report["rows_filtered"] + report["rows_duplicate"] + unchanged
    )


def assert_no_key(tmp: Path, *texts: str) -> int:
    """The API key is in none of the texts and no file under tmp but the key file itself."""
    for text in texts:
        assert API_KEY not in text
    scanned = 0
    for path in sorted(tmp.rglob("*")):
        if path.is_file() and path.name != "api.key":
            assert API_KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"
            scanned += 1
    return scanned


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m t360cli ARGS` in cwd with a clean environment plus env."""
    return subprocess.run([*T360, *args], cwd=cwd, env=cli_env(env), capture_output=True, text=True, timeout=timeout)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("T360_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env

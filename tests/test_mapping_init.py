"""`t360 mapping init`: a starter mapping for every sample export that `t360 validate` accepts.

Runs the typer app in-process (CliRunner): `mapping init FILE --kind K -o OUT`, then
`validate FILE -m OUT --report R`, which must finish (exit 0 or 1), never refuse the
mapping (exit 2), and read as many rows as the sample's golden says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from t360cli.cli import app
from t360cli.demo import DEMO_FILES, SAMPLES
from t360cli.mapping import load_mapping

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
EXPORTS = list(
    dict.fromkeys((data, load_mapping(SAMPLES / m).kind, m) for data, m in DEMO_FILES if m != "daily_events.yaml")
)  # one run per export file

# export -> {target: column} the starter must find, and `source:` keys it must write
MATCHES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "customers.csv": (
        {
            "customerId": "Login",
            "regtime": "Registration Date",
            "country": "Country",
            "tracking_data": "Campaign",
            "firstName": "First Name",
        },
        {},
    ),
    "deposits.xlsx": (
        {"customerid": "Login", "eventid": "Txn ID", "createtime": "Date", "Value": "Amount", "Currency": "Ccy"},
        {"sheet": "Deposits", "decimal": ","},
    ),
    "withdrawals.csv": (
        {
            "customerid": "Account ID",
            "eventid": "Txn ID",
            "createtime": "Request Date",
            "Value": "Amount",
            "Currency": "Ccy",
        },
        {"encoding": "cp1252"},
    ),
    "daily_trading.csv": ({"customerid": "Login", "createtime": "Report Date", "Currency": "Ccy"}, {}),
    "ib_rebates.jsonl": (
        {"customerid": "login", "eventid": "ticket", "createtime": "close_time", "Currency": "currency"},
        {},
    ),
    "trades.csv": ({"customerid": "Login", "eventid": "Ticket", "createtime": "Close Time", "Currency": "Ccy"}, {}),
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path with none of t360's variables but a private state dir."""
    for name in [n for n in __import__("os").environ if n.startswith("T360_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("T360_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def init(path: Path, kind: str, out: Path) -> tuple[Result, dict[str, Any], str]:
    result = invoke("mapping", "init", str(path), "--kind", kind, "-o", str(out))
    assert result.exit_code == 0, f"mapping init crashed or refused: {result.output}"
    text = out.read_text(encoding="utf-8")
    return result, yaml.safe_load(text), text


def validate(path: Path, mapping: Path, report: Path) -> dict[str, Any]:
    result = invoke("validate", str(path), "-m", str(mapping), "--report", str(report), "-q")
    assert result.exit_code in (0, 1), f"validate refused the starter mapping:\n{result.output}"
    assert "Traceback" not in result.output
    return json.loads(report.read_text(encoding="utf-8"))


@pytest.mark.parametrize("data, kind, mapping", EXPORTS, ids=[e[0] for e in EXPORTS])
def test_starter_validates_and_matches(data: str, kind: str, mapping: str, here: Path) -> None:
    result, parsed, text = init(SAMPLES / data, kind, here / "starter.yaml")
    report = validate(SAMPLES / data, here / "starter.yaml", here / "report.json")
    golden = json.loads((GOLDEN / f"{Path(mapping).stem}.json").read_text(encoding="utf-8"))
    assert report["rows_read"] == golden["counts"]["rows_read"], "read the wrong sheet or rows"
    assert report["kind"] == parsed["kind"] == kind
    fields, source = MATCHES[data]
    got = {t: spec["column"] for t, spec in parsed["fields"].items() if isinstance(spec, dict) and "column" in spec}
    assert {t: got.get(t) for t in fields} == fields, text
    assert {k: (parsed.get("source") or {}).get(k) for k in source} == source, text
    assert text.count(f"\n  {'customerId' if kind == 'customers' else 'customerid'}:") == 1


def test_types_chosen_from_values(here: Path) -> None:
    _, customers, _ = init(SAMPLES / "customers.csv", "customers", here / "c.yaml")
    assert customers["fields"]["regtime"] == {
        "column": "Registration Date",
        "type": "datetime",
        "format": "%d/%m/%Y %H:%M",
    }
    assert customers["fields"]["country"]["type"] == "country"
    assert "type" not in customers["fields"]["customerId"]  # ids stay text: 0048812 keeps its zeros
    _, deposits, _ = init(SAMPLES / "deposits.xlsx", "activities", here / "d.yaml")
    assert deposits["fields"]["createtime"]["format"] == "%d.%m.%Y %H:%M"
    assert deposits["fields"]["Value"]["type"] == "decimal"
    assert deposits["fields"]["Currency"]["type"] == "currency"


def test_unmapped_columns_are_listed(here: Path) -> None:
    result, _, text = init(SAMPLES / "customers.csv", "customers", here / "c.yaml")
    assert "left unmapped: Email, Account Type, Sales Status" in result.stderr
    for line in (
        '#  email: {column: "Email"}',
        '#  accounttype: {column: "Account Type"}',
        '#  salesstatus: {column: "Sales Status"}',
    ):
        assert line in text


def test_synonyms_tag_country_code_client_id(here: Path) -> None:
    (here / "crm.csv").write_text(
        "Client ID,Tag,Country Code,Registration Date,Ccy\n"
        "A1,t_1,ES,2025-07-01 10:00,EUR\nA2,,de,2025-07-02 11:30,usd\n"
    )
    _, parsed, _ = init(here / "crm.csv", "customers", here / "crm.yaml")
    assert {t: s["column"] for t, s in parsed["fields"].items()} == {
        "customerId": "Client ID",
        "regtime": "Registration Date",
        "country": "Country Code",
        "tracking_data": "Tag",
    }
    assert validate(here / "crm.csv", here / "crm.yaml", here / "r.json")["rows_valid"] == 2
    _, acts, _ = init(here / "crm.csv", "activities", here / "acts.yaml")
    assert acts["fields"]["customerid"]["column"] == "Client ID"
    assert acts["fields"]["Currency"] == {"column": "Ccy", "type": "currency"}


def test_ambiguous_day_month_dates_get_a_comment(here: Path) -> None:
    rows = ["03/04/2025 10:00", "05/06/2025 11:30", "11/12/2025 09:15", "01/02/2025 18:45"]
    (here / "dep.csv").write_text("Login,Date,Amount\n" + "".join(f"{i},{d},{i}00.00\n" for i, d in enumerate(rows, 1)))
    _, parsed, text = init(here / "dep.csv", "activities", here / "dep.yaml")
    line = next(x for x in text.splitlines() if x.startswith("  createtime:"))
    assert "# AMBIGUOUS: these dates read as %d/%m/%Y %H:%M and as %m/%d/%Y %H:%M" in line
    assert parsed["fields"]["createtime"]["format"] == "%d/%m/%Y %H:%M"
    assert validate(here / "dep.csv", here / "dep.yaml", here / "r.json")["rows_valid"] == 4
    # one day above 12 settles it: no comment
    (here / "dep2.csv").write_text("Login,Date,Amount\n1,25/04/2025 10:00,1.00\n2,03/04/2025 10:00,2.00\n")
    _, _, text2 = init(here / "dep2.csv", "activities", here / "dep2.yaml")
    assert "AMBIGUOUS" not in text2 and '"%d/%m/%Y %H:%M"' in text2


def test_no_id_column_is_one_todo_line(here: Path) -> None:
    (here / "x.csv").write_text("Foo,Amount,Date\nk1,10.00,2025-07-01 10:00\nk2,20.00,2025-07-02 10:00\n")
    _, parsed, text = init(here / "x.csv", "activities", here / "x.yaml")
    assert text.count("\n  customerid:") == 1 and "TODO: no id column recognised" in text
    assert parsed["fields"]["customerid"] == {"column": "Foo"}
    assert validate(here / "x.csv", here / "x.yaml", here / "r.json")["rows_valid"] == 2


def test_output_exists_needs_force(here: Path) -> None:
    out = here / "mine.yaml"
    out.write_text("# my hand-written mapping\n", encoding="utf-8")
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    result = invoke("mapping", "init", str(SAMPLES / "trades.csv"), "--kind", "activities", "-o", str(out))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {out} exists; not overwriting it.") and "--force" in result.stderr
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before
    forced = invoke("mapping", "init", str(SAMPLES / "trades.csv"), "--kind", "activities", "-o", str(out), "--force")
    assert forced.exit_code == 0 and out.read_text(encoding="utf-8").startswith("# Starter mapping")


def test_stdout_without_output(here: Path) -> None:
    result = invoke("mapping", "init", str(SAMPLES / "ib_rebates.jsonl"), "--kind", "activities")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["fields"]["eventid"] == {"column": "ticket"}
    assert not list(here.glob("*.yaml"))


def test_bad_kind_is_a_usage_error(here: Path) -> None:
    result = invoke("mapping", "init", str(SAMPLES / "trades.csv"), "--kind", "trades")
    assert result.exit_code == 2 and "--kind must be customers or activities" in result.stderr

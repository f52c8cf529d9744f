"""`t360 mapping init`: a starter mapping for every sample export that `t360 validate` accepts.

Runs the typer app in-process (CliRunner): `mapping init FILE --kind K -o OUT`, then
`validate FILE -m OUT --report R`, which must finish (exit 0 or 1), never refuse the
mapping (exit 2), read as many rows as the sample's golden says, and reject no row that the
sample's hand-written mapping does not also reject for the same field (SPEC 12: the starter,
used as written, reads real exports as they come: titles, Total lines, comma decimals,
MetaTrader times).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from t360cli.cli import app
from t360cli.demo import DEMO_FILES, SAMPLES
from t360cli.errors import T360Error
from t360cli.mapping import load_mapping
from t360cli.starter import guess_datetime, init_command
from t360cli.starter_detect import match_columns, sniff_delimiter

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
    "mt_deals.csv": (
        {"customerid": "Login", "eventid": "Deal", "createtime": "Time", "Currency": "Currency"},
        {"encoding": "cp1252", "delimiter": ";", "decimal": ","},
    ),
    "deposits_report.xlsx": (
        {
            "customerid": "Account",
            "eventid": "Transaction ID",
            "createtime": "Deposit Date",
            "Value": "Amount",
            "Currency": "Currency",
        },
        {"sheet": "Deposits", "header_row": 4, "skip_footer": 1},
    ),
}
# Rows the sample mapping filters out (`where:`) before they are checked: the starter has no
# `where:`, so it checks them (customers line 23 `00/00/0000 00:00`, deposits row 17 `—`).
NEVER_CHECKED = {"customers.csv": {23}, "deposits.xlsx": {17}}


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


def rejected(report: dict[str, Any]) -> dict[int, str]:
    """source line -> the field its reason names (the text before the first colon)."""
    if not report["rejects"]:
        return {}
    with open(report["rejects"], newline="", encoding="utf-8") as f:
        return {int(r["source_line"]): r["reason"].split(":")[0] for r in csv.DictReader(f)}


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
    # the key test: no reject of the starter's own making (a wrong format, decimal, sheet, header...)
    wanted = {line: reason.split(":")[0] for line, reason in golden["rejects"]}
    for line, target in rejected(report).items():
        assert line in wanted or line in NEVER_CHECKED.get(data, set()), (line, target, text)
        assert line not in wanted or wanted[line] == target, (line, target, wanted[line])


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


# --- SPEC 12: real exports as they come ------------------------------------------------


def test_metatrader_deals(here: Path) -> None:
    """cp1252, `;`, comma decimals, `2025.07.01 08:00:00`: only the file's own bad rows are rejected."""
    _, parsed, text = init(SAMPLES / "mt_deals.csv", "activities", here / "mt.yaml")
    assert parsed["fields"]["createtime"] == {"column": "Time", "type": "datetime", "format": "%Y.%m.%d %H:%M:%S"}
    assert parsed["fields"]["eventid"] == {"column": "Deal"}  # Deal, not Order
    assert parsed["source"] == {"encoding": "cp1252", "delimiter": ";", "decimal": ","}
    assert '#  Volume: {column: "Volume", type: decimal}   # e.g. "1,00"' in text  # the guide's spelling
    assert 'e.g. "María Sánchez"' in text and 'e.g. "Dépôt carte bancaire"' in text  # plain UTF-8
    assert "\\u00" not in text
    report = validate(SAMPLES / "mt_deals.csv", here / "mt.yaml", here / "r.json")
    assert rejected(report) == {9: "createtime", 14: "customerid"}  # 2025.06.31; no Login
    assert (report["rows_read"], report["rows_valid"], report["rows_duplicate"]) == (30, 26, 2)


def test_titled_workbook_report(here: Path) -> None:
    """Summary sheet first, merged title and subtitle above the header, a Total row below."""
    _, parsed, text = init(SAMPLES / "deposits_report.xlsx", "activities", here / "rep.yaml")
    assert parsed["source"] == {"sheet": "Deposits", "header_row": 4, "skip_footer": 1}
    assert "decimal" not in parsed["source"]  # numeric cells: 2435.72
    assert parsed["fields"]["Value"] == {"column": "Amount", "type": "decimal"}
    report = validate(SAMPLES / "deposits_report.xlsx", here / "rep.yaml", here / "r.json")
    assert report["rows_read"] == 20  # the Total row is not data
    assert rejected(report) == {9: "customerid", 14: "Currency"}  # no account; EURO


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes("".join(line + "\r\n" for line in lines).encode(encoding))
    return path


TITLED = [
    "Withdrawals report;;;;",
    "Generated 01.08.2025 09:00;;;;",
    ";;;;",
    "Ticket;Account;Requested;Amount;Ccy",
    "T-1;5102345;21.07.2025 08:46;1.234,50;EUR",
    "T-2;5102361;22.07.2025 17:05;99,00;USD",
    "T-3;0048812;31.07.2025 23:59;12.500,00;EUR",
    "Total;;;13.833,50;",
]


def test_csv_title_block_total_line_and_comma_decimals(here: Path) -> None:
    path = write_csv(here / "wd.csv", TITLED, "cp1252")
    _, parsed, text = init(path, "activities", here / "wd.yaml")
    assert parsed["source"] == {"delimiter": ";", "header_row": 4, "skip_footer": 1, "decimal": ","}, text
    assert parsed["fields"]["createtime"]["format"] == "%d.%m.%Y %H:%M"
    assert parsed["fields"]["eventid"] == {"column": "Ticket"}
    report = validate(path, here / "wd.yaml", here / "r.json")
    assert (report["rows_read"], report["rows_rejected"], report["rows_valid"]) == (3, 0, 3)
    assert report["totals"]["valid"]["Deposit"]["EUR"]["Value"] == "13734.50"


@pytest.mark.parametrize(
    "delimiter, source",
    [("\t", {"format": "tsv", "header_row": 3}), (";", {"format": "csv", "delimiter": ";", "header_row": 3})],
    ids=["tab", "semicolon"],
)
def test_txt_is_sniffed_as_csv_or_tsv(delimiter: str, source: dict[str, Any], here: Path) -> None:
    rows = ["Deals export", "", "Deal,Login,Time,Volume,Currency", "1001,5102345,2025.07.01 08:00:00,0.50,USD"]
    rows += ["1002,5102361,2025.07.01 09:30:00,1.25,EUR", "1003,5102402,2025.07.02 10:00:00,2.00,USD"]
    path = write_csv(here / "deals.txt", [r.replace(",", delimiter) for r in rows])
    _, parsed, text = init(path, "activities", here / "deals.yaml")
    assert parsed["source"] == source, text
    assert parsed["fields"]["eventid"] == {"column": "Deal"}
    report = validate(path, here / "deals.yaml", here / "r.json")
    assert (report["rows_read"], report["rows_rejected"]) == (3, 0)


def test_workbook_sheet_with_a_header_not_the_summary_title(here: Path) -> None:
    """Before: the Summary's title became the id column. Now: the first sheet with a header and data."""
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    wb.active.title = "Summary"
    for line in (["Monthly statement", ""], ["Period", "July 2025"], ["Rows", 2]):
        wb.active.append(line)
    ws = wb.create_sheet("Data")
    ws.append(["Statement of account"])
    ws.merge_cells("A1:D1")
    ws.append(["Foo", "Bar", "Baz", "Qux"])
    ws.append(["k1", "x", 10.5, "2025-07-01"])
    ws.append(["k2", "y", 20, "2025-07-02"])
    wb.save(here / "st.xlsx")
    _, parsed, text = init(here / "st.xlsx", "activities", here / "st.yaml")
    assert parsed["source"] == {"sheet": "Data", "header_row": 2}, text
    assert parsed["fields"]["customerid"] == {"column": "Foo"}
    report = validate(here / "st.xlsx", here / "st.yaml", here / "r.json")
    assert (report["rows_read"], report["rows_rejected"]) == (2, 0)


@pytest.mark.parametrize(
    "values, fmt, ambiguous",
    [
        (["2025.07.01 08:00:00", "2025.07.21 17:45:09"], "%Y.%m.%d %H:%M:%S", False),  # MetaTrader
        (["2025.07.01 08:00", "2025.07.21 17:45"], "%Y.%m.%d %H:%M", False),
        (["21.07.2025 08:46", "01.07.2025 09:00"], "%d.%m.%Y %H:%M", False),
        (["03.04.2025 10:00", "05.06.2025 11:00"], "%d.%m.%Y %H:%M", False),  # dots: day-first, always
        (["2025-07-01 08:00:00", "2025-07-21 17:45:09"], "%Y-%m-%d %H:%M:%S", False),
        (["2025-07-01 08:00", "2025-07-21 17:45"], "%Y-%m-%d %H:%M", False),
        (["13-04-2025", "03-04-2025"], "%d-%m-%Y", False),  # a day above 12 decides
        (["04-13-2025", "04-03-2025"], "%m-%d-%Y", False),
        (["04/13/2025 10:00", "04/03/2025 10:00", "04/05/2025 10:00"], "%m/%d/%Y %H:%M", False),
        (["03-04-2025", "05-06-2025"], "%d-%m-%Y", True),
        (["03/04/2025", "05/06/2025"], "%d/%m/%Y", True),
    ],
)
def test_datetime_formats(values: list[str], fmt: str, ambiguous: bool) -> None:
    got = guess_datetime(values)
    assert got is not None and got["format"] == fmt
    assert ("AMBIGUOUS" in got.get("note", "")) is ambiguous


def test_iso_needs_no_format() -> None:
    assert guess_datetime(["2025-07-22T10:15:00Z", "2025-07-22T11:00:00+02:00"]) == {"type": "datetime"}
    assert guess_datetime(["Card", "Wire"]) is None


@pytest.mark.parametrize("name", ["Deal", "Ticket", "Order", "Transaction ID", "Deal #", "Order No.", "Txn Ref"])
def test_eventid_synonyms(name: str) -> None:
    assert match_columns("activities", ["Login", name, "Time"])["eventid"] == name


def test_deal_before_order() -> None:
    assert match_columns("activities", ["Order", "Login", "Deal"])["eventid"] == "Deal"


def test_sniff_delimiter_ignores_title_lines() -> None:
    assert sniff_delimiter(["Report, July", "a;b;c", "1;2,5;3", "4;5;6"]) == ";"
    assert sniff_delimiter(["just a title"]) == ","


def test_options_override_what_is_found(here: Path) -> None:
    """--format, --delimiter, --encoding, --header-row (library call; cli.py passes them on)."""
    path = write_csv(here / "export.dat", ["Export of deals", "Deal|Login|Amount", "7|5102345|10.50"], "cp1252")
    made = init_command(
        str(path), "activities", str(here / "o.yaml"), False, format="csv", delimiter="|", encoding="latin-1"
    )
    assert made.written_to == str(here / "o.yaml")
    parsed = yaml.safe_load(made.text)
    assert parsed["source"] == {"format": "csv", "encoding": "latin-1", "delimiter": "|", "header_row": 2}
    report = validate(path, here / "o.yaml", here / "r.json")
    assert (report["rows_read"], report["rows_rejected"]) == (1, 0)
    forced = yaml.safe_load(init_command(str(path), "activities", None, False, format="csv", header_row=2).text)
    assert forced["source"]["header_row"] == 2


def test_sheet_option(here: Path) -> None:
    by_name = yaml.safe_load(
        init_command(str(SAMPLES / "deposits.xlsx"), "activities", None, False, sheet="Deposits").text
    )
    assert by_name["source"]["sheet"] == "Deposits"
    by_index = yaml.safe_load(init_command(str(SAMPLES / "deposits.xlsx"), "activities", None, False, sheet="1").text)
    assert by_index["source"]["sheet"] == 1 and by_index["fields"]["eventid"] == {"column": "Txn ID"}


@pytest.mark.parametrize(
    "option, message",
    [
        ({"format": "xls"}, "--format must be one of csv, tsv, xlsx, jsonl, json, parquet, not 'xls'."),
        ({"delimiter": ";;"}, "--delimiter must be one character, not ';;'."),
        ({"encoding": "klingon"}, "--encoding: unknown encoding 'klingon'."),
        ({"header_row": 0}, "--header-row must be 1 or more, not 0."),
    ],
)
def test_bad_options_are_one_sentence(option: dict[str, Any], message: str) -> None:
    with pytest.raises(T360Error) as caught:
        init_command(str(SAMPLES / "trades.csv"), "activities", None, False, **option)
    assert caught.value.message == message and caught.value.exit_code == 2


def test_cli_writes_plain_utf8_to_stdout(here: Path) -> None:
    """The installed command, as a user runs it: `t360 mapping init FILE --kind activities`."""
    t360 = Path(sys.executable).parent / "t360"
    proc = subprocess.run(
        [str(t360), "mapping", "init", str(SAMPLES / "mt_deals.csv"), "--kind", "activities"],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode("utf-8")
    assert 'e.g. "María Sánchez"' in text and "\\u00" not in text
    assert yaml.safe_load(text)["fields"]["createtime"]["format"] == "%Y.%m.%d %H:%M:%S"
    assert b"left unmapped: Name, Entry" in proc.stderr


def test_the_options_through_the_command_line(tmp_path: Path) -> None:
    """SPEC 12: --format, --delimiter, --encoding, --sheet, --header-row on the command line."""
    import subprocess
    import sys

    (tmp_path / "d.txt").write_text(
        "Report of deals\n\nDeal|Login|Time\n1|5|2025.07.01 08:00:00\n2|6|2025.07.01 09:00:00\n"
    )
    t360 = Path(sys.executable).with_name("t360")
    args = ["mapping", "init", "d.txt", "--kind", "activities", "--format", "csv", "--delimiter", "|"]
    out = subprocess.run([str(t360), *args, "--header-row", "3"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'delimiter: "|"' in out.stdout and "header_row: 3" in out.stdout
    assert 'eventid: {column: "Deal"}' in out.stdout and '"%Y.%m.%d %H:%M:%S"' in out.stdout
    bad = subprocess.run([str(t360), *args[:5], "--format", "xls"], cwd=tmp_path, capture_output=True, text=True)
    assert (
        bad.returncode == 2 and "--format must be one of csv, tsv, xlsx, jsonl, json, parquet, not 'xls'." in bad.stderr
    )


def test_uncommented_starter_lines_are_valid_yaml(tmp_path: Path) -> None:
    """The starter says "uncomment to send them as additional fields": uncommented, the
    mapping must still load (the example value is a YAML comment)."""
    from t360cli.starter import init_command

    text = init_command(str(SAMPLES / "mt_deals.csv"), "activities", None, False).text
    uncommented = "\n".join(line[1:] if line.startswith("#  ") else line for line in text.splitlines())
    (tmp_path / "all.yaml").write_text(uncommented, encoding="utf-8")
    mapping = load_mapping(tmp_path / "all.yaml")
    assert {"Volume", "comment"} <= {spec.target for spec in mapping.fields}

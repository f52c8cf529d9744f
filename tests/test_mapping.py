"""Mapping files: loading, every key, and an exact error for each kind of mistake (SPEC 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from t360cli.errors import MappingError
from t360cli.mapping import Template, check_columns, load_mapping


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as info:
        load_mapping(path)
    return str(info.value).replace(str(path), "m.yaml")


def test_full_mapping_loads_every_key(tmp_path: Path) -> None:
    m = load_mapping(
        write(
            tmp_path,
            """
kind: activities
source: {format: csv, delimiter: ";", encoding: cp1252, decimal: ",", thousands: "."}
timezone: Europe/Madrid
output_timezone: UTC
where:
  Status: [Approved, Completed]
fields:
  customerid: {template: "fx_{Account}"}
  eventname: {value: Deposit}
  eventid: "Txn ID"
  createtime: {column: Date, type: datetime, format: "%d.%m.%Y %H:%M"}
  Value: {column: Amount, type: decimal}
  Currency: {column: Ccy, type: currency, default: USD}
  deposit_type: {column: Method, map: {CC: credit_card, BT: bank_transfer}, required: true, max_length: 20}
""",
        )
    )
    assert m.kind == "activities" and m.decimal == "," and m.thousands == "."
    assert m.source.delimiter == ";" and m.source.encoding == "cp1252"
    assert m.timezone == "Europe/Madrid" and m.where == {"Status": ("Approved", "Completed")}
    specs = {s.target: s for s in m.fields}
    assert specs["customerid"].template == Template(("fx_", "Account", ""))
    assert specs["customerid"].required and specs["eventname"].required  # the guide's required fields
    assert specs["eventid"].column == "Txn ID"
    assert specs["createtime"].format == "%d.%m.%Y %H:%M"
    assert specs["Currency"].default == "USD" and specs["Currency"].type == "currency"
    assert specs["deposit_type"].map == {"CC": "credit_card", "BT": "bank_transfer"}
    assert specs["deposit_type"].max_length == 20
    assert set(m.columns_used()) == {"Status", "Account", "Txn ID", "Date", "Amount", "Ccy", "Method"}


def test_scalars_stay_text(tmp_path: Path) -> None:
    m = load_mapping(
        write(
            tmp_path,
            """
kind: customers
fields:
  customerId: Login
  country: {column: Country, map: {NO: "NO", Norway: "NO"}}
  tier: {value: 00123}
""",
        )
    )
    specs = {s.target: s for s in m.fields}
    assert specs["country"].map == {"NO": "NO", "Norway": "NO"}
    assert specs["tier"].value == "00123"


def test_default_types_and_tracking_limit(tmp_path: Path) -> None:
    m = load_mapping(
        write(tmp_path, "kind: customers\nfields:\n  customerId: id\n  regtime: reg\n  tracking_data: t\n")
    )
    specs = {s.target: s for s in m.fields}
    assert specs["regtime"].type == "datetime"
    assert specs["tracking_data"].max_length == 50


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "kind: activities\nfields:\n  customerId: Login\n  eventname: {value: Deposit}\n",
            "m.yaml, line 3: 'customerId' is the customers spelling; did you mean customerid? "
            "Track360 spells it customerId for customers and customerid for activities.",
        ),
        (
            "kind: customers\nfields:\n  customerid: Login\n",
            "m.yaml, line 3: 'customerid' is the activities spelling; did you mean customerId? "
            "Track360 spells it customerId for customers and customerid for activities.",
        ),
        (
            "kind: customers\nfeilds:\n  customerId: Login\n",
            "m.yaml, line 2: unknown key 'feilds' in the mapping. Did you mean 'fields'? "
            "Allowed: kind, source, timezone, output_timezone, where, fields, events, aggregate.",
        ),
        (
            "fields:\n  customerId: Login\n",
            "m.yaml, line 1: `kind:` is missing. Add `kind: customers` or `kind: activities`.",
        ),
        (
            "kind: customer\nfields:\n  customerId: Login\n",
            "m.yaml, line 1: kind 'customer' is not customers or activities. Did you mean 'customers'?",
        ),
        (
            "kind: activities\nfields:\n  customerid: Login\n",
            "m.yaml, line 2: fields: eventname is required for activities and is not mapped. "
            "Add `eventname: {column: ...}` (or value/template).",
        ),
        (
            "kind: customers\nfields:\n  customerId: {column: Login, type: decimel}\n",
            "m.yaml, line 3: customerId: unknown type 'decimel'. Did you mean 'decimal'? "
            "Types: string, decimal, integer, datetime, date, currency, country.",
        ),
        (
            "kind: customers\nfields:\n  customerId: {column: Login, value: x}\n",
            "m.yaml, line 3: customerId: give exactly one of column, value or template (found 2).",
        ),
        (
            "kind: customers\nfields:\n  customerId: {colum: Login}\n",
            "m.yaml, line 3: unknown key 'colum' in field customerId. Did you mean 'column'? "
            "Allowed: column, value, template, type, format, default, map, unmapped, strip, required, max_length, extra, generate.",
        ),
        (
            "kind: customers\nfields:\n  customerId: Login\n  regtime: {column: Reg, type: datetime, format: 'nothing'}\n",
            None,
        ),
        (
            "kind: customers\nfields:\n  customerId: {column: Login, format: '%d'}\n",
            "m.yaml, line 3: customerId: format applies to datetime and date fields, and this one is string. "
            "Add `type: datetime` (or date).",
        ),
        (
            "kind: customers\ntimezone: Europe/Madird\nfields:\n  customerId: Login\n",
            "m.yaml, line 2: unknown time zone 'Europe/Madird'. Use an IANA name such as Europe/Madrid or UTC.",
        ),
        (
            "kind: customers\nfields:\n  customerId: {template: 'fx_'}\n",
            "m.yaml, line 3: customerId: template 'fx_' names no {Column}. Use `value:` for a constant.",
        ),
        (
            "kind: customers\nfields:\n  customerId: Login\n  Regtime: R\n",
            "m.yaml, line 4: 'Regtime': field names are case-sensitive; did you mean regtime?",
        ),
        (
            "kind: customers\nfields:\n  customerId: Login\n  x: {column: A, max_length: ten}\n",
            "m.yaml, line 4: x: max_length must be a whole number of at least 1.",
        ),
        (
            "kind: customers\nsource: {decimal: ';'}\nfields:\n  customerId: Login\n",
            'm.yaml, line 2: source.decimal must be "." or ",", not \';\'.',
        ),
        (
            "kind: customers\nsource: {format: xls}\nfields:\n  customerId: Login\n",
            "m.yaml, line 2: unknown format 'xls'. Did you mean 'xlsx'? Formats: csv, tsv, xlsx, jsonl, json, parquet.",
        ),
        (
            "kind: customers\nfields:\n  customerId: Login\n  customerId: Other\n",
            "m.yaml, line 4: 'customerId' is given twice. Keep one of them.",
        ),
        (
            "kind: customers\nfields: [a, b]\n",
            "m.yaml, line 2: `fields:` is missing or empty. List the target fields, e.g. `customerid: {column: Login}`.",
        ),
        (
            "kind: activities\nfields:\n  customerid: L\n  eventname: E\n  Value: {column: A, type: string}\n",
            "m.yaml, line 5: Value must be typed decimal or integer, not string. "
            "Remove the type to use the default, or pick one of those.",
        ),
        ("kind: [customers\n", None),
    ],
)
def test_mapping_errors(tmp_path: Path, text: str, message: str | None) -> None:
    got = error_of(tmp_path, text)
    if message is None:
        assert got.startswith("m.yaml, line")
    else:
        assert got == message


def test_missing_column_suggests_closest_header(tmp_path: Path) -> None:
    m = load_mapping(
        write(
            tmp_path,
            "kind: activities\nfields:\n  customerid: Login\n  eventname: {value: Deposit}\n"
            "  Value: {column: Amout, type: decimal}\n",
        )
    )
    with pytest.raises(MappingError) as info:
        check_columns(m, "deposits.csv", ["Login", "Amount", "Ccy"])
    assert str(info.value) == (
        f"{m.path}, line 5: column 'Amout' is not in deposits.csv. Did you mean 'Amount'? "
        "Its columns are: Login, Amount, Ccy."
    )


def test_where_column_checked_too(tmp_path: Path) -> None:
    m = load_mapping(write(tmp_path, "kind: customers\nwhere: {Stat: [A]}\nfields:\n  customerId: Login\n"))
    with pytest.raises(MappingError, match="line 2: column 'Stat' is not in f.csv. Did you mean 'Status'"):
        check_columns(m, "f.csv", ["Login", "Status"])


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    """One run names them all, in line order (issue "The house": one checker that collects)."""
    got = error_of(
        tmp_path,
        "kind: activities\n"
        "timezone: Mars/Olympus\n"
        "fields:\n"
        "  customerid: Login\n"
        "  eventname: {value: Deposit}\n"
        "  Value: {column: Amount, type: decimel}\n"
        "  createtime: {column: Date, type: datetime, format: '%d.%m.%Y %H:%M:%S %Q'}\n"
        "  Currency: {colum: Ccy}\n",
    )
    assert got.splitlines()[0] == "m.yaml has 4 mistakes:"
    bullets = got.splitlines()[1:]
    assert [b.split(":")[0] for b in bullets] == ["• line 2", "• line 6", "• line 7", "• line 8"]
    assert "unknown time zone 'Mars/Olympus'" in bullets[0]
    assert "unknown type 'decimel'. Did you mean 'decimal'?" in bullets[1]
    assert "bad format" in bullets[2]
    assert "unknown key 'colum' in field Currency. Did you mean 'column'?" in bullets[3]


def test_a_misspelt_field_is_not_also_missing(tmp_path: Path) -> None:
    """The wrong spelling of a required field is one mistake, not two."""
    got = error_of(tmp_path, "kind: activities\nfields:\n  customerId: Login\n  EventName: {value: Deposit}\n")
    assert got.startswith("m.yaml has 2 mistakes:")
    assert "did you mean customerid?" in got and "did you mean eventname?" in got
    assert "is required" not in got


@pytest.mark.parametrize(
    "target, meant",
    [("tracking_dta", "tracking_data"), ("trackingData", "tracking_data"), ("Regtime", "regtime")],
)
def test_a_near_miss_of_a_customers_field_is_a_mistake(tmp_path: Path, target: str, meant: str) -> None:
    """SPEC 12: sent as an additional field, the real one would go missing in silence."""
    got = error_of(tmp_path, f"kind: customers\nfields:\n  customerId: Login\n  {target}: Tag\n")
    assert got.startswith("m.yaml, line 4: '" + target + "'") and f"did you mean {meant}?" in got


@pytest.mark.parametrize("target, meant", [("Curency", "Currency"), ("Lot", "Lots"), ("Trade", "Trades")])
def test_a_near_miss_of_an_activities_field_is_a_mistake(tmp_path: Path, target: str, meant: str) -> None:
    got = error_of(tmp_path, f"kind: activities\nfields:\n  customerid: L\n  eventname: {{value: D}}\n  {target}: C\n")
    assert got == (
        f"m.yaml, line 5: '{target}' is not a Track360 field of activities; did you mean {meant}? "
        "If it is an additional field on purpose, add `extra: true` to it."
    )


def test_extra_true_and_far_names_pass(tmp_path: Path) -> None:
    m = load_mapping(
        write(
            tmp_path,
            "kind: activities\nfields:\n  customerid: L\n  eventname: {value: D}\n"
            "  Lot: {column: lot, extra: true}\n  note: N\n  deposit_type: M\n",
        )
    )
    assert [(s.target, s.extra) for s in m.fields][2:] == [("Lot", True), ("note", False), ("deposit_type", False)]


def test_strip_and_unmapped_keys(tmp_path: Path) -> None:
    m = load_mapping(
        write(
            tmp_path,
            "kind: customers\nfields:\n  customerId: Login\n"
            "  country: {column: C, type: country, map: {España: ES}, unmapped: keep}\n"
            '  balance: {column: B, type: decimal, strip: "€$% "}\n',
        )
    )
    specs = {s.target: s for s in m.fields}
    assert specs["country"].unmapped == "keep" and specs["balance"].strip == "€$% "
    bad = error_of(tmp_path, "kind: customers\nfields:\n  customerId: {column: L, unmapped: keep}\n")
    assert "unmapped is `keep` or `reject`, beside a map:" in bad


def test_every_missing_column_is_reported_at_once(tmp_path: Path) -> None:
    m = load_mapping(
        write(
            tmp_path,
            "kind: customers\nfields:\n  customerId: Client Id\n  regtime: {column: Registred, type: datetime}\n"
            "  lastName: Surnme\n  country: Country\n",
        )
    )
    with pytest.raises(MappingError) as info:
        check_columns(m, "c.csv", ["Login", "Registered", "Surname", "Country"])
    lines = str(info.value).splitlines()
    assert lines[0] == f"{m.path} names 3 columns that are not in c.csv:"
    assert lines[1].startswith("• line 3: column 'Client Id' is not in c.csv.")
    assert lines[2] == "• line 4: column 'Registred' is not in c.csv. Did you mean 'Registered'?"
    assert lines[3].startswith("• line 5: column 'Surnme' is not in c.csv. Did you mean 'Surname'?")

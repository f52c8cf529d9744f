"""Cell parsers of t360cli.convert: exact canonical values and exact reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from t360cli import codes
from t360cli.convert import (
    Parsed,
    check_format,
    check_timezone,
    parse_country,
    parse_currency,
    parse_datetime,
    parse_decimal,
    parse_integer,
)

NOT_ISO = " is not an ISO 8601 date or time; set format: in the mapping"


def pairs(out: Parsed) -> list[tuple[str | None, str | None]]:
    """(value, error) per cell; also checks the type and validity of both arrays."""
    assert isinstance(out, Parsed)
    for arr in (out.values, out.errors):
        assert isinstance(arr, pa.Array) and arr.type == pa.string()
        arr.validate(full=True)
    return list(zip(out.values.to_pylist(), out.errors.to_pylist(), strict=True))


def run(parser, cells, **kw) -> list[tuple[str | None, str | None]]:
    return pairs(parser(pa.array(cells, pa.string()), **kw))


def one(parser, cell, **kw) -> tuple[str | None, str | None]:
    return run(parser, [cell], **kw)[0]


# --- decimal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, want",
    [
        ("1000.00", "1000.00"),
        ("1,234.5", "1234.5"),
        ("+1,234.50", "1234.50"),
        ("007.50", "7.50"),
        (".5", "0.5"),
        ("-.5", "-0.5"),
        ("+.5", "0.5"),
        ("5.", "5"),
        ("-0.00", "-0.00"),
        ("0", "0"),
        ("000", "0"),
        ("-007", "-7"),
        ("-1,000", "-1000"),
        ("1,234,567.891", "1234567.891"),
        ("1234567", "1234567"),
        ("0.000", "0.000"),
        ("123456789012345678901234567890.12345678", "123456789012345678901234567890.12345678"),  # 38 digits
    ],
)
def test_decimal_canonical(cell, want):
    assert one(parse_decimal, cell) == (want, None)


@pytest.mark.parametrize(
    "cell",
    [
        "12,34.5",
        "1,23",
        ",123",
        "1,2345",
        "1,234,56",
        "abc",
        "-",
        "+",
        ".",
        "1.2.3",
        "1e5",
        "1 234",
        "$5",
        "5-",
        "--5",
        "+-5",
        "1,234.5,6",
        "0x10",
        "\u0661\u0662",
        "NaN",
        "Infinity",
        "1.234,5",
    ],
)
def test_decimal_rejects(cell):
    assert one(parse_decimal, cell) == (None, f"'{cell}' is not a number")


@pytest.mark.parametrize(
    "cell, want",
    [
        ("1.234,50", "1234.50"),
        ("1234,5", "1234.5"),
        ("-0,5", "-0.5"),
        (",5", "0.5"),
        ("1.234.567", "1234567"),
        ("1.234", "1234"),
        ("007,10", "7.10"),
    ],
)
def test_decimal_european(cell, want):
    assert one(parse_decimal, cell, decimal=",") == (want, None)


@pytest.mark.parametrize("cell", ["1,234.50", "12.34,5", "1234.5", "1.23"])
def test_decimal_european_rejects(cell):
    assert one(parse_decimal, cell, decimal=",") == (None, f"'{cell}' is not a number")


@pytest.mark.parametrize(
    "thousands, cell, want",
    [
        (" ", "1 234.5", "1234.5"),
        (" ", "1,234.5", None),
        ("'", "1'234'567.25", "1234567.25"),
        ("", "1234.5", "1234.5"),
        ("", "1,234.5", None),
        (".", "1.234", "1234"),
        (".", "1.23", None),
    ],
)
def test_decimal_explicit_thousands(thousands, cell, want):
    decimal = "," if thousands == "." else "."
    value, error = one(parse_decimal, cell, decimal=decimal, thousands=thousands)
    assert value == want
    assert error == (None if want else f"'{cell}' is not a number")


@pytest.mark.parametrize("decimal, thousands", [(".", "."), (",", ","), (";", None)])
def test_decimal_bad_separators_raise(decimal, thousands):
    with pytest.raises(ValueError):
        parse_decimal(pa.array(["1"]), decimal=decimal, thousands=thousands)


def test_decimal_numeric_cells_ignore_separators():
    cells = ["1234.5", "1234.5", "1e5", "1e5", "1.5E-7", "-0.10", "1,234"]
    numeric = np.array([True, False, True, False, True, True, True])
    assert run(parse_decimal, cells, numeric=numeric, decimal=",") == [
        ("1234.5", None),
        (None, "'1234.5' is not a number"),
        ("100000", None),
        (None, "'1e5' is not a number"),
        ("0.00000015", None),
        ("-0.10", None),
        (None, "'1,234' is not a number"),
    ]


def test_decimal_numeric_mask_default_separators():
    numeric = np.array([True, False, True])
    assert run(parse_decimal, ["2.5e+3", "1,000.5", "inf"], numeric=numeric) == [
        ("2500", None),
        ("1000.5", None),
        (None, "'inf' is not a number"),
    ]


def test_numeric_mask_of_wrong_length_raises():
    with pytest.raises(ValueError):
        parse_decimal(pa.array(["1", "2"]), numeric=np.array([True]))


# --- integer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, want",
    [
        ("007", "7"),
        ("-0", "0"),
        ("+0", "0"),
        ("-000", "0"),
        ("+5", "5"),
        ("1,234", "1234"),
        ("-1,234,567", "-1234567"),
        ("0", "0"),
        ("-007", "-7"),
        ("12345678901234567890123", "12345678901234567890123"),
    ],
)
def test_integer_canonical(cell, want):
    assert one(parse_integer, cell) == (want, None)


@pytest.mark.parametrize("cell", ["3.0", "3.", ".5", "1,23", "abc", "1e3", "+", "-", "1 000"])
def test_integer_rejects(cell):
    assert one(parse_integer, cell) == (None, f"'{cell}' is not a whole number")


def test_integer_european():
    assert run(parse_integer, ["1.234", "3,0"], decimal=",") == [("1234", None), (None, "'3,0' is not a whole number")]


def test_integer_numeric_cells():
    cells = ["5", "5.0", "5.5", "1e3", "1.5e1", "-0.0", "1.55e1", "3.0"]
    numeric = np.array([True] * 7 + [False])
    assert run(parse_integer, cells, numeric=numeric) == [
        ("5", None),
        ("5", None),
        (None, "'5.5' is not a whole number"),
        ("1000", None),
        ("15", None),
        ("0", None),
        (None, "'1.55e1' is not a whole number"),
        (None, "'3.0' is not a whole number"),
    ]


# --- nulls, chunked arrays, other string types ------------------------------------------

PARSERS = [parse_decimal, parse_integer, parse_datetime, parse_currency, parse_country]


@pytest.mark.parametrize("parser", PARSERS)
def test_null_in_null_out(parser):
    out = run(parser, [None, None])
    assert out == [(None, None), (None, None)]


@pytest.mark.parametrize("parser", PARSERS)
def test_empty_input(parser):
    assert run(parser, []) == []
    out = parser(pa.chunked_array([], pa.string()))
    assert len(out.values) == 0 and len(out.errors) == 0


@pytest.mark.parametrize(
    "parser, cells",
    [
        (parse_decimal, ["1,000.50", None, "x", "2"]),
        (parse_integer, ["007", "x", None, "-0"]),
        (parse_datetime, ["2025-07-21 08:46:59", None, "x", "45859.5"]),
        (parse_currency, ["usd", None, "zzz", "EUR"]),
        (parse_country, ["Spain", "esp", None, "Narnia"]),
    ],
)
def test_chunked_and_sliced_inputs_match_plain(parser, cells):
    plain = run(parser, cells)
    chunked = parser(pa.chunked_array([pa.array(cells[:1], pa.string()), pa.array(cells[1:], pa.string())]))
    assert pairs(chunked) == plain
    sliced = parser(pa.array(["pad", *cells], pa.string()).slice(1))
    assert pairs(sliced) == plain
    large = parser(pa.array(cells, pa.large_string()))
    assert pairs(large) == plain
    assert any(v is not None for v, _ in plain) and any(e is not None for _, e in plain)


# --- currency and country --------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, want",
    [
        ("usd", "USD"),
        ("EUR", "EUR"),
        ("Chf", "CHF"),
        ("XAU", "XAU"),
        ("jpy", "JPY"),
    ],
)
def test_currency(cell, want):
    assert one(parse_currency, cell) == (want, None)


@pytest.mark.parametrize("cell", ["ABC", "US", "USDT", "XXX", "XTS", "\u20ac", "US D"])
def test_currency_rejects(cell):
    assert one(parse_currency, cell) == (None, f"'{cell}' is not an ISO 4217 currency code")


@pytest.mark.parametrize(
    "cell, want",
    [
        ("es", "ES"),
        ("ES", "ES"),
        ("ESP", "ES"),
        ("esp", "ES"),
        ("Spain", "ES"),
        ("SPAIN", "ES"),
        ("united kingdom", "GB"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("USA", "US"),
        ("United States", "US"),
        ("united states of america", "US"),
        ("C\u00f4te d'Ivoire", "CI"),
        ("cote d\u2019ivoire", "CI"),
        ("T\u00fcrkiye", "TR"),
        ("Turkey", "TR"),
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("South Korea", "KR"),
        ("Korea, Republic of", "KR"),
        ("DEU", "DE"),
        ("Germany", "DE"),
        ("Bolivia", "BO"),
        ("russia", "RU"),
        ("Czechia", "CZ"),
        ("Czech Republic", "CZ"),
    ],
)
def test_country(cell, want):
    assert one(parse_country, cell) == (want, None)


@pytest.mark.parametrize("cell", ["Korea", "Narnia", "XX", "EU", "E", "ESPA"])
def test_country_rejects(cell):
    assert one(parse_country, cell) == (None, f"'{cell}' is not a known country")


def test_codes_data():
    assert len(codes.COUNTRIES) == 249
    assert len({a2 for a2, _, _ in codes.COUNTRIES}) == 249
    assert all(len(a2) == 2 and len(a3) == 3 and name for a2, a3, name in codes.COUNTRIES)
    assert {"USD", "EUR", "GBP", "JPY", "CHF"} <= codes.CURRENCIES
    assert not {"XXX", "XTS"} & codes.CURRENCIES
    alpha2 = {a2 for a2, _, _ in codes.COUNTRIES}
    assert set(codes.COUNTRY_ALIASES.values()) <= alpha2
    assert all(k == k.lower() for k in codes.COUNTRY_ALIASES)


# --- datetime: ISO 8601, offsets, Excel serials (UTC default) -----------------------------


@pytest.mark.parametrize(
    "cell, want",
    [
        ("2025-07-21", "2025-07-21 00:00"),
        ("2025-07-21T08:46", "2025-07-21 08:46"),
        ("2025-07-21 08:46:59", "2025-07-21 08:46"),  # seconds truncated, not rounded
        ("2025-07-21T08:46:59.999", "2025-07-21 08:46"),
        ("2025-07-21T08:46:59Z", "2025-07-21 08:46"),
        ("2025-07-21T08:46:59+02:00", "2025-07-21 06:46"),
        ("2025-07-21T08:46:59+0200", "2025-07-21 06:46"),
        ("2025-07-21 08:46-05:30", "2025-07-21 14:16"),
        ("2025-07-21T23:30:00.5-02:00", "2025-07-22 01:30"),
        ("2024-02-29 12:00", "2024-02-29 12:00"),
        ("1969-12-31 23:59:59", "1969-12-31 23:59"),
        ("45859.36597", "2025-07-21 08:47"),  # 08:46:59.808, rounded to the second first
        ("45859", "2025-07-21 00:00"),
        ("45859.5", "2025-07-21 12:00"),
        (f"{45859 + 31619.4 / 86400:.10f}", "2025-07-21 08:46"),  # 08:46:59.4 -> 08:46:59
        ("1", "1900-01-01 00:00"),  # SPEC 12: serials below 60 are their true day
        ("59.5", "1900-02-28 12:00"),
        ("61", "1900-03-01 00:00"),
        ("2958465", "9999-12-31 00:00"),
    ],
)
def test_datetime_accepts(cell, want):
    assert one(parse_datetime, cell) == (want, None)


@pytest.mark.parametrize(
    "cell",
    [
        "21.07.2025",
        "07/21/2025",
        "03/04/2025 10:00",
        "2025-02-30",
        "2025-02-29 00:00",
        "2025-13-01",
        "2025-00-10",
        "2025-07-21 24:00",
        "2025-07-21 08:60",
        "2025-07-21 08:46:60",
        "2025-07-21T08",
        "2025-7-21",
        "20250721T0846",
        "0",
        "0.5",
        "2958466",
        "-1",
        "abc",
        "2025-07-21T08:46:59+25:00",
        "2025-07-21Z",
        "0000-01-01",
        "2025-07-21 08:46 ",
    ],
)
def test_datetime_rejects_without_format(cell):
    assert one(parse_datetime, cell) == (None, f"'{cell}'{NOT_ISO}")


def test_datetime_fast_paths_agree_with_pandas():
    rng = np.random.default_rng(7)
    secs = rng.integers(-2_000_000_000, 4_000_000_000, 3000).astype("datetime64[s]")
    text = pd.Series(secs).dt.strftime("%Y-%m-%d %H:%M:%S").tolist()
    text += [t[:16] for t in text[:500]] + [t[:10] for t in text[500:1000]]
    want = pd.to_datetime(pd.Series(text), format="ISO8601").dt.strftime("%Y-%m-%d %H:%M")
    assert [v for v, _ in run(parse_datetime, text)] == want.tolist()
    dmy = pd.Series(secs).dt.strftime("%d.%m.%Y %H:%M:%S").tolist()
    got = [v for v, _ in run(parse_datetime, dmy, fmt="%d.%m.%Y %H:%M:%S")]
    assert got == pd.Series(secs).dt.strftime("%Y-%m-%d %H:%M").tolist()


# --- datetime: time zones ---------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, want",
    [
        ("2025-07-21 08:46", "2025-07-21 06:46"),  # CEST, +02:00
        ("2025-01-15 08:46", "2025-01-15 07:46"),  # CET, +01:00
        ("2025-07-21", "2025-07-20 22:00"),  # a date means 00:00 local
        ("2025-03-30 01:59", "2025-03-30 00:59"),
        ("2025-03-30 03:00", "2025-03-30 01:00"),
        ("2025-10-26 02:30", "2025-10-26 00:30"),  # repeated hour: the earlier instant (CEST)
        ("2025-10-26 03:00", "2025-10-26 02:00"),
        ("2025-07-21T08:46+00:00", "2025-07-21 08:46"),  # an offset beats the zone
        ("45859.5", "2025-07-21 10:00"),
    ],
)
def test_datetime_madrid_to_utc(cell, want):
    assert one(parse_datetime, cell, tz="Europe/Madrid") == (want, None)


@pytest.mark.parametrize("cell", ["2025-03-30 02:00", "2025-03-30 02:30", "2025-03-30 02:59:59"])
def test_datetime_spring_forward_rejects(cell):
    assert one(parse_datetime, cell, tz="Europe/Madrid") == (
        None,
        f"'{cell}' does not exist in Europe/Madrid (clock change)",
    )


def test_datetime_spring_forward_with_format():
    cell = "30.03.2025 02:30"
    assert one(parse_datetime, cell, fmt="%d.%m.%Y %H:%M", tz="Europe/Madrid") == (
        None,
        f"'{cell}' does not exist in Europe/Madrid (clock change)",
    )


@pytest.mark.parametrize(
    "cell, want",
    [
        ("2025-07-21 06:46", "2025-07-21 08:46"),
        ("2025-10-26 00:30", "2025-10-26 02:30"),
        ("2025-10-26 01:30", "2025-10-26 02:30"),
        ("2025-07-21T08:46+02:00", "2025-07-21 08:46"),
    ],
)
def test_datetime_output_zone(cell, want):
    assert one(parse_datetime, cell, out_tz="Europe/Madrid") == (want, None)


def test_datetime_zone_to_zone():
    assert one(parse_datetime, "2025-07-21 08:46", tz="Europe/Madrid", out_tz="America/New_York") == (
        "2025-07-21 02:46",
        None,
    )


@pytest.mark.parametrize(
    "cell, kw, want",
    [
        ("2025-07-21", {"tz": "Europe/Madrid"}, "2025-07-21"),  # a date is kept as it is
        ("2025-07-21 01:30", {"tz": "Europe/Madrid"}, "2025-07-20"),
        ("2025-07-21 20:00", {"out_tz": "Asia/Tokyo"}, "2025-07-22"),
        ("45859", {"tz": "Europe/Madrid"}, "2025-07-21"),  # a whole serial is a date
        ("45859.99", {"out_tz": "Europe/Madrid"}, "2025-07-22"),
        ("2025-07-21T23:30-05:00", {}, "2025-07-22"),
        ("21.07.2025", {"fmt": "%d.%m.%Y", "tz": "Pacific/Auckland"}, "2025-07-21"),
        ("2025-09-07", {"tz": "America/Santiago"}, "2025-09-07"),  # midnight skipped there
    ],
)
def test_date_only(cell, kw, want):
    assert one(parse_datetime, cell, date_only=True, **kw) == (want, None)


def test_date_only_rejects():
    assert run(parse_datetime, ["2025-03-30 02:30", "x"], tz="Europe/Madrid", date_only=True) == [
        (None, "'2025-03-30 02:30' does not exist in Europe/Madrid (clock change)"),
        (None, f"'x'{NOT_ISO}"),
    ]


def test_datetime_outside_years_1_to_9999_after_conversion_rejects():
    assert run(parse_datetime, ["9999-12-31 23:00", "9999-12-31 14:00"], out_tz="Asia/Tokyo") == [
        (None, f"'9999-12-31 23:00'{NOT_ISO}"),
        ("9999-12-31 23:00", None),
    ]


# --- datetime: strptime formats -----------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, cell, want",
    [
        ("%d.%m.%Y %H:%M", "21.07.2025 08:46", "2025-07-21 08:46"),
        ("%d.%m.%Y %H:%M", "1.7.2025 8:46", "2025-07-01 08:46"),  # strptime takes unpadded
        ("%d.%m.%Y %H:%M", "21.07.2025  08:46", "2025-07-21 08:46"),  # a space is any spaces
        ("%d.%m.%Y %H:%M", "2025-07-21 08:46", "2025-07-21 08:46"),  # ISO is always understood
        ("%d.%m.%Y %H:%M", "45859.5", "2025-07-21 12:00"),  # and so are Excel serials
        ("%d.%m.%Y %H", "21.07.2025 08", "2025-07-21 08:00"),
        ("%d/%m/%Y %H:%M:%S", "21/07/2025 08:46:59", "2025-07-21 08:46"),
        ("%Y%m%d", "20250721", "2025-07-21 00:00"),
        ("%Y%m%d%H%M%S", "20250721084659", "2025-07-21 08:46"),
        ("%m/%d/%Y %I:%M %p", "07/21/2025 08:46 PM", "2025-07-21 20:46"),
        ("%d %b %Y", "21 Jul 2025", "2025-07-21 00:00"),
        ("%d/%m/%y", "21/07/25", "2025-07-21 00:00"),
        ("%d/%m/%Y %H:%M:%S%z", "21/07/2025 08:46:00+0200", "2025-07-21 06:46"),
        ("%Y-%m-%d %H:%M:%S.%f", "2025-07-21 08:46:59.999999", "2025-07-21 08:46"),
        ("%Y\u5e74%m\u6708%d\u65e5", "2025\u5e7407\u670821\u65e5", "2025-07-21 00:00"),
        ("100%% %d.%m.%Y", "100% 21.07.2025", "2025-07-21 00:00"),
    ],
)
def test_datetime_format_accepts(fmt, cell, want):
    assert one(parse_datetime, cell, fmt=fmt) == (want, None)


@pytest.mark.parametrize(
    "fmt, cell",
    [
        ("%d.%m.%Y %H:%M", "31.02.2025 08:46"),
        ("%d.%m.%Y %H:%M", "21.07.2025"),
        ("%d.%m.%Y %H:%M", "21.07.2025 08:46:00"),
        ("%d.%m.%Y %H:%M", "07/21/2025 08:46"),
        ("%d.%m.%Y %H:%M", "21.13.2025 08:46"),
        ("%d.%m.%Y %H:%M", "21.07.2025 25:00"),
        ("%d %b %Y", "21 Foo 2025"),
    ],
)
def test_datetime_format_rejects(fmt, cell):
    assert one(parse_datetime, cell, fmt=fmt) == (None, f"'{cell}' does not match format {fmt}")


def test_datetime_numeric_cells():
    cells = ["45859.5", "4.58595e4", "4.58595e4", "20250721"]
    numeric = np.array([True, True, False, True])
    assert run(parse_datetime, cells, numeric=numeric) == [
        ("2025-07-21 12:00", None),
        ("2025-07-21 12:00", None),
        (None, f"'4.58595e4'{NOT_ISO}"),
        (None, f"'20250721'{NOT_ISO}"),
    ]
    assert run(parse_datetime, ["20250721"], numeric=np.array([True]), fmt="%Y%m%d") == [("2025-07-21 00:00", None)]


def test_datetime_mixed_column_keeps_positions():
    cells = ["21.07.2025 08:46", None, "2025-07-21T10:00+02:00", "bad", "45859.25", "2025-07-21", "1.7.2025 8:46"]
    assert run(parse_datetime, cells, fmt="%d.%m.%Y %H:%M") == [
        ("2025-07-21 08:46", None),
        (None, None),
        ("2025-07-21 08:00", None),
        (None, "'bad' does not match format %d.%m.%Y %H:%M"),
        ("2025-07-21 06:00", None),
        ("2025-07-21 00:00", None),
        ("2025-07-01 08:46", None),
    ]


# --- checks for the mapping -------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, want",
    [
        ("%Q", "format '%Q' has an unknown directive %Q"),
        ("%d.%m.%Y %Q", "format '%d.%m.%Y %Q' has an unknown directive %Q"),
        ("abc", "format 'abc' has no % directive (for example %d.%m.%Y %H:%M)"),
        ("", "format '' has no % directive (for example %d.%m.%Y %H:%M)"),
        ("%d.%m %H:%M", "format '%d.%m %H:%M' has no year (%Y or %y)"),
        ("%d.%m.%Y 50%", "format '%d.%m.%Y 50%' ends with a lone %"),
        ("%d.%m.%Y %H:%M", None),
        ("%Y-%m-%dT%H:%M:%S%z", None),
        ("%d %b %Y", None),
        ("%m/%d/%y %I:%M %p", None),
        ("%Y%m%d", None),
    ],
)
def test_check_format(fmt, want):
    assert check_format(fmt) == want


def test_check_format_refused_by_pandas():
    assert check_format("%d.%m.%Y %W").startswith("format '%d.%m.%Y %W' cannot be used: ")


@pytest.mark.parametrize(
    "tz, ok",
    [
        ("UTC", True),
        ("Europe/Madrid", True),
        ("America/New_York", True),
        ("Mars/Base", False),
        ("", False),
        ("../etc/passwd", False),
    ],
)
def test_check_timezone(tz, ok):
    hint = "is not an IANA time zone name (for example Europe/Madrid or UTC)"
    assert check_timezone(tz) == (None if ok else f"'{tz}' {hint}")


def test_excel_1900_leap_day_and_the_1904_system() -> None:
    """SPEC 12: serial 60 (Excel's fictitious 1900-02-29) is a reject; a 1904 workbook's
    serials count from 1904-01-01 (Mac Excel), serial 0 included."""
    got = parse_datetime(pa.array(["60", "60.25", "0", "45859"]), date1904=False)
    assert got.values.to_pylist()[:2] == [None, None] and got.errors.to_pylist()[0] is not None
    mac = parse_datetime(pa.array(["0", "44397", "1.5"]), date1904=True)
    assert mac.values.to_pylist() == ["1904-01-01 00:00", "2025-07-21 00:00", "1904-01-02 12:00"]

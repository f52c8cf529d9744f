"""Tests of t360cli.readers on tiny files (tests/data/readers) and files generated in tmp_path."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from t360cli import readers
from t360cli.errors import InputError
from t360cli.readers import (
    BadRow,
    SourceOptions,
    file_sha256,
    read_chunks,
    read_header,
    resolve_inputs,
)

DATA = Path(__file__).resolve().parent / "data" / "readers"
SPECTRUM = DATA.parent / "csv-spectrum"  # copied from ../shared/peer with its LICENSE and NOTICE


DEFAULT = SourceOptions()


def read_all(paths, opts=DEFAULT, chunk_rows=50_000):
    """Every chunk's rows, lines and bad rows, flattened."""
    chunks = list(read_chunks([Path(p) for p in paths], opts, chunk_rows))
    rows = [r for c in chunks for r in c.table.to_pylist()]
    lines = [int(x) for c in chunks for x in c.lines]
    bad = [b for c in chunks for b in c.bad]
    return chunks, rows, lines, bad


def gz_copy(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / (src.name + ".gz")
    out.write_bytes(gzip.compress(src.read_bytes()))
    return out


# ---------------------------------------------------------------- resolve_inputs, sha256


def test_resolve_inputs_globs_sorted_and_deduplicated(tmp_path):
    for n in ("b.csv", "a.csv", "c.txt"):
        (tmp_path / n).write_text("x\n1\n")
    got = resolve_inputs([str(tmp_path / "*.csv"), str(tmp_path / "a.csv"), str(tmp_path / "c.txt")])
    assert [p.name for p in got] == ["a.csv", "b.csv", "c.txt"]


@pytest.mark.parametrize(
    "pattern, words",
    [
        ("nothing-*.csv", "No file matches"),
        ("missing.csv", "no such file"),
        (".", "is a directory"),
    ],
)
def test_resolve_inputs_refuses(tmp_path, monkeypatch, pattern, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=words):
        resolve_inputs([pattern])


def test_file_sha256_is_sha256_of_the_bytes():
    p = DATA / "basic.csv"
    assert file_sha256(p) == hashlib.sha256(p.read_bytes()).hexdigest()


# ---------------------------------------------------------------- CSV


def test_csv_cells_lines_and_ragged_rows():
    chunks, rows, lines, bad = read_all([DATA / "basic.csv"])
    assert chunks[0].columns == ["account", "name", "amount"]
    assert chunks[0].source.format == "csv" and chunks[0].numeric == {}
    assert rows == [
        {"account": "00123", "name": "Smith, John", "amount": "1e5"},
        {"account": "1234567890123456789", "name": "two\nlines", "amount": "2"},
        {"account": "7", "name": 'say "hi"', "amount": "0.10"},
        {"account": " last ", "name": " x ", "amount": "  "},
    ]
    assert lines == [2, 3, 6, 10]  # quoted newline: 3-4; blank line 5; ragged 7, 8; empty cells 9
    assert bad == [
        BadRow(7, "2 cells, the header has 3", {"account": "8", "name": "9"}),
        BadRow(
            8,
            "4 cells, the header has 3",
            {"account": "10", "name": "11", "amount": "12", "_extra_1": "13"},
        ),
    ]
    assert chunks[0].lines.dtype == np.int64


def test_csv_bom_crlf_semicolon_sniffed_and_header_trimmed():
    chunks, rows, lines, bad = read_all([DATA / "bom_crlf.csv"])
    assert chunks[0].columns == ["Id", "Name", "Amount"]
    assert rows == [
        {"Id": "1", "Name": "a\r\nb", "Amount": "1,5"},
        {"Id": "2", "Name": "c", "Amount": "3"},
    ]
    assert lines == [2, 5] and bad == []


def test_csv_other_encoding(tmp_path):
    _, rows, lines, _ = read_all([DATA / "cp1252.csv"], SourceOptions(encoding="cp1252"))
    assert [r["name"] for r in rows] == ["José", "Zoë"] and rows[0]["note"] == "€ 5"
    assert lines == [2, 3]


def test_csv_bad_encoding_rejects_the_rows_naming_byte_and_column():  # SPEC 11: a row-level problem
    _, rows, lines, bad = read_all([DATA / "cp1252.csv"])
    assert rows == [] and [b.line for b in bad] == [2, 3]
    assert bad[0].reason == "not valid UTF-8 (byte 0xE9 at column 2); set source.encoding"
    assert bad[0].cells["name"] == "Jos\ufffd"  # writable as UTF-8 in the rejects file


def test_csv_undecodable_bytes_in_declared_encoding(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b\n1,2\n3,\x81\n")
    _, rows, lines, bad = read_all([p], SourceOptions(encoding="cp1252"))
    assert rows == [{"a": "1", "b": "2"}] and lines == [2]
    assert [(b.line, b.reason) for b in bad] == [(3, "not valid cp1252 (byte 0x81 at column 2); set source.encoding")]


@pytest.mark.parametrize(
    "content, opts, expected",
    [
        (b"a|b|c\n1|2,5|x\n", SourceOptions(), {"a": "1", "b": "2,5", "c": "x"}),
        (b"a\tb\n1\t2\n", SourceOptions(), {"a": "1", "b": "2"}),
        (b"a;b,c|d\n1;2,3|4\n", SourceOptions(), {"a;b": "1;2", "c|d": "3|4"}),  # tie: comma
        (b"a;b\n1;2\n", SourceOptions(delimiter=";"), {"a": "1", "b": "2"}),
        (b"only\n42\n", SourceOptions(), {"only": "42"}),
    ],
)
def test_csv_delimiter_sniffed_or_given(tmp_path, content, opts, expected):
    p = tmp_path / "d.csv"
    p.write_bytes(content)
    assert read_all([p], opts)[1] == [expected]


def test_tsv_defaults_to_tab():
    chunks, rows, _, _ = read_all([DATA / "tab.tsv"])
    assert chunks[0].source.format == "tsv" and rows == [{"a": "1", "b": "x\ty"}]


@pytest.mark.parametrize(
    "header, words",
    [
        (b"a,,c\n", "line 1: header column 2 has no name"),
        (b"\n\na, b ,b\n", "line 3: header column 3 'b' repeats column 2"),
        (b"\n \n", "the file is empty"),
    ],
)
def test_csv_header_errors(tmp_path, header, words):
    p = tmp_path / "h.csv"
    p.write_bytes(header + b"1,2,3\n" if b"," in header else header)
    with pytest.raises(InputError, match=words):
        read_all([p])


def test_csv_blank_lines_before_header_count(tmp_path):
    p = tmp_path / "b.csv"
    p.write_bytes(b"\r\n\r\nx,y\r\n1,2\r\n")
    assert read_all([p])[2] == [4]
    assert read_header(p, SourceOptions()) == ["x", "y"]


def test_csv_lone_cr_line_endings(tmp_path):
    p = tmp_path / "cr.csv"
    p.write_bytes(b'a,b\r1,"x\ry"\r2,3\r')
    _, rows, lines, _ = read_all([p])
    assert rows == [{"a": "1", "b": "x\ry"}, {"a": "2", "b": "3"}] and lines == [2, 4]


def test_csv_line_of_spaces_is_not_a_bad_row(tmp_path):
    p = tmp_path / "s.csv"
    p.write_bytes(b"a,b\n1,2\n   \n3,4\n")
    _, rows, lines, bad = read_all([p])
    assert rows == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}] and lines == [2, 4] and bad == []


def test_unknown_encoding_is_an_input_error():
    with pytest.raises(InputError, match="unknown encoding"):
        read_all([DATA / "basic.csv"], SourceOptions(encoding="klingon"))


def _tricky_csv() -> bytes:
    rows = [
        b'1,"a\nb",x',
        b"",
        b'2,"c""d",y',
        b'3,"e\r\nf\r\ng",z',
        b'4,"a,b",',
        b",,",
        b'5,"",""',
        b'6,"ab"c,d"e',
    ]
    return b"id,text,n\n" + b"\n".join(rows * 3) + b"\n"


def test_fast_and_slow_csv_paths_agree(tmp_path, monkeypatch):
    p = tmp_path / "t.csv"
    p.write_bytes(_tricky_csv())

    def refuse(*a, **k):
        raise AssertionError("path not expected here")
        yield

    with monkeypatch.context() as m:
        m.setattr(readers.csvsrc, "_csv_slow", refuse)
        fast = read_all([p], chunk_rows=4)[1:]
    monkeypatch.setattr(readers.csvsrc, "_csv_fast", refuse)
    with pytest.raises(AssertionError, match="not expected"):
        read_all([p])
    monkeypatch.setattr(readers.csvsrc, "_csv_fast", lambda *a: (_ for _ in ()).throw(readers.csvsrc._SlowPath()))
    slow = read_all([p], chunk_rows=4)[1:]
    assert fast == slow
    assert fast[1][:7] == [2, 5, 6, 9, 11, 12, 13]  # "a\nb" spans 2-3, blank 4, CRLFs inside 6-8
    assert fast[0][5] == {"id": "6", "text": "abc", "n": 'd"e'} and fast[0][4] == {
        "id": "5",
        "text": "",
        "n": "",
    }


@pytest.mark.parametrize(
    "name, opts",
    [
        ("basic.csv", SourceOptions()),
        ("bom_crlf.csv", SourceOptions()),
        ("pipe.csv", SourceOptions()),
        ("cp1252.csv", SourceOptions(encoding="cp1252")),
        ("tab.tsv", SourceOptions()),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_slow_path_reads_every_csv_like_the_fast_path(tmp_path, monkeypatch, name, opts, gz):
    p = gz_copy(DATA / name, tmp_path) if gz else DATA / name
    fast = read_all([p], opts, chunk_rows=2)[1:]
    monkeypatch.setattr(readers.csvsrc, "_csv_fast", lambda *a: (_ for _ in ()).throw(readers.csvsrc._SlowPath()))
    assert read_all([p], opts, chunk_rows=2)[1:] == fast and fast[0]


def test_slow_path_after_fast_chunks_keeps_every_row_once(tmp_path):
    body = "".join(f'{i},"v{i}\nw",{i % 7}\n' for i in range(40_000))  # > one 1 MiB block
    p = tmp_path / "big.csv"
    p.write_text("id,text,n\n" + body + "40000,ragged\n" + "40001,last,1\n")
    chunks, rows, lines, bad = read_all([p], chunk_rows=7_000)
    assert [r["id"] for r in rows] == [str(i) for i in range(40_000)] + ["40001"]
    assert lines[:3] == [2, 4, 6] and lines[-1] == 80_003
    assert bad == [BadRow(80_002, "2 cells, the header has 3", {"id": "40000", "text": "ragged"})]
    assert all(c.table.num_rows <= 7_000 for c in chunks)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_chunking_gives_same_rows_and_lines(size):
    one = read_all([DATA / "basic.csv", DATA / "bom_crlf.csv"])
    chunks, *many = read_all([DATA / "basic.csv", DATA / "bom_crlf.csv"], chunk_rows=size)
    assert many == list(one[1:])
    assert all(c.table.num_rows <= size and len(c.lines) == c.table.num_rows for c in chunks)
    assert [c.source.index for c in chunks] == sorted(c.source.index for c in chunks)
    assert {c.source.index for c in chunks} == {0, 1}


@pytest.mark.parametrize("name", ["basic.csv", "tab.tsv", "events.jsonl", "records.json"])
def test_gzipped_inputs_read_like_plain_ones(tmp_path, name):
    plain = read_all([DATA / name])[1:]
    gz = read_all([gz_copy(DATA / name, tmp_path)])[1:]
    assert gz == plain and plain[0]


def test_broken_gzip_is_an_input_error(tmp_path):
    p = tmp_path / "x.csv.gz"
    p.write_bytes(gzip.compress(b"a,b\n1,2\n" * 1000)[:-30])
    with pytest.raises(InputError, match="x.csv.gz: cannot read"):
        read_all([p])


def test_format_from_extension_or_option(tmp_path):
    p = tmp_path / "data.txt"
    shutil.copy(DATA / "pipe.csv", p)
    with pytest.raises(InputError, match="source.format"):
        read_all([p])
    assert read_all([p], SourceOptions(format="csv"))[1] == [{"a": "1", "b": "2,5", "c": "x"}]


def test_csv_spectrum(tmp_path):
    cases = sorted((SPECTRUM / "csvs").glob("*.csv"))
    assert len(cases) >= 10
    for csv_path in cases:
        data = csv_path.read_bytes()
        if csv_path.stem.endswith("_crlf") and b"\r" not in data:
            data = data.replace(b"\n", b"\r\n")  # the copy lost its CRs; the expected JSON has them
        p = tmp_path / csv_path.name
        p.write_bytes(data)
        expected = json.loads((SPECTRUM / "json" / (csv_path.stem + ".json")).read_text("utf-8"))
        assert read_all([p])[1] == expected, csv_path.name


# ---------------------------------------------------------------- JSON Lines / JSON


def test_jsonl_values_lines_and_bad_lines():
    chunks, rows, lines, bad = read_all([DATA / "events.jsonl"])
    c = chunks[0]
    assert c.columns == ["id", "amount", "big", "exp", "ok", "no", "nil", "nested", "extra"]
    assert rows[0] == {
        "id": "00123",
        "amount": "1000.00",
        "big": "12345678901234567890",
        "exp": "1e5",
        "ok": "true",
        "no": "false",
        "nil": "",
        "nested": '{"a":[1,2.50,"x"]}',
        "extra": "",
    }
    assert rows[1]["id"] == "2" and rows[1]["extra"] == "e" and rows[1]["amount"] == ""
    assert rows[2]["amount"] == "-3"
    assert lines == [1, 3, 7]  # line 6 is all null: skipped
    assert c.numeric["amount"].tolist() == [True, False, True]
    assert c.numeric["id"].tolist() == [False, False, False]
    assert [(b.line, b.reason.split(":")[0]) for b in bad] == [
        (4, "not valid JSON"),
        (5, "not a JSON object but an array"),
    ]
    assert bad[0].reason.startswith("not valid JSON: Expecting value at column 1") and bad[0].cells == {}


def test_ndjson_extension_and_header_union(tmp_path):
    p = tmp_path / "e.ndjson"
    p.write_text("".join(json.dumps({"k": i, f"c{i % 3}": 1}) + "\n" for i in range(1_200)) + '{"late": 1}\n')
    assert read_header(p, SourceOptions()) == ["k", "c0", "c1", "c2"]
    assert read_all([p])[0][0].source.format == "jsonl"


def test_jsonl_bad_encoding_names_line(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_bytes(b'{"a": "x"}\n{"a": "\xe9"}\n')
    _, rows, lines, bad = read_all([p])  # SPEC 11: a line that does not decode is a reject
    assert rows == [{"a": "x"}] and [(b.line, b.reason) for b in bad] == [
        (2, "not valid UTF-8 (byte 0xE9 at column 8); set source.encoding")
    ]
    assert read_all([p], SourceOptions(encoding="latin-1"))[1][1] == {"a": "é"}


def test_jsonl_columns_are_per_chunk():
    chunks, *_ = read_all([DATA / "events.jsonl"], chunk_rows=1)
    assert [c.columns for c in chunks][1:] == [["id", "extra"], ["amount"]]


def test_json_array_values_and_record_index():
    chunks, rows, lines, bad = read_all([DATA / "records.json"])
    assert rows == [
        {"id": "00123", "amount": "1000.00", "ok": "true", "extra": "", "nil": ""},
        {"id": "2", "amount": "", "ok": "", "extra": "e", "nil": ""},
        {"id": "", "amount": "1e5", "ok": "", "extra": "", "nil": ""},
    ]
    assert lines == [1, 2, 4] and bad == []
    assert chunks[0].numeric["amount"].tolist() == [True, False, True]
    assert read_header(DATA / "records.json", SourceOptions()) == [
        "id",
        "amount",
        "ok",
        "extra",
        "nil",
    ]


def test_json_array_streams_across_read_blocks(tmp_path):
    objs = [{"id": i, "text": "é" * (i % 50), "v": i / 8} for i in range(6_000)]
    p = tmp_path / "big.json"
    p.write_text(json.dumps(objs, indent=1), "utf-8")
    assert p.stat().st_size > 3 * (1 << 16)
    _, rows, lines, _ = read_all([p], chunk_rows=1_000)
    assert lines == list(range(1, 6_001))
    assert rows[4_999] == {"id": "4999", "text": "é" * 49, "v": "624.875"}


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"a": 1}', "not a JSON array"),
        ("", "not a JSON array"),
        ('[{"a": 1}, 5]', "record 2 is a number, not an object"),
        ('[{"a": 1} {"a": 2}]', "expected ',' or ']' after record 1"),
        ('[{"a": 1}, {"a": }]', "record 2 is not valid JSON"),
        ('[{"a": 1}', "the file ends after record 1, without the closing ']' (is it truncated?)"),
        ('[{"a": 1}] x', "unexpected text after"),
    ],
)
def test_json_not_an_array_of_objects(tmp_path, content, words):
    p = tmp_path / "x.json"
    p.write_text(content)
    with pytest.raises(InputError) as e:
        read_all([p])
    assert words in str(e.value)


def test_empty_json_array_gives_no_chunk(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(" [ ] ")
    assert read_all([p])[0] == []


# ---------------------------------------------------------------- XLSX


def _workbook(path: Path) -> Path:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Summary"
    ws["A1"] = "nothing here"
    ws = wb.create_sheet("Deposits")
    ws["B3"], ws["C3"], ws["D3"], ws["E3"] = " id ", "amount", "when", "flag"
    ws.append([])
    rows = [
        ["00123", 1234.5, dt.datetime(2024, 1, 2, 3, 4, 5, 600_000), True],
        [5, 5.0, dt.date(2024, 1, 2), dt.time(13, 14, 15)],
        [
            12345678901234567,
            0.1,
            dt.datetime(2024, 12, 31, 23, 59, 59, 500_000),
            False,
        ],  # a double: shortest form
    ]
    for r, values in enumerate(rows, 5):
        for c, v in enumerate(values, 2):
            ws.cell(row=r, column=c, value=v)
    ws["B9"], ws["F9"] = "x", "stray"  # a cell right of the header: ragged
    ws["C10"] = 1e20
    wb.save(path)
    return path


def test_xlsx_cells_and_excel_row_numbers(tmp_path):
    p = _workbook(tmp_path / "book.xlsx")
    chunks, rows, lines, bad = read_all([p], SourceOptions(sheet="Deposits"))
    c = chunks[0]
    assert c.columns == ["id", "amount", "when", "flag"]
    assert rows == [
        {"id": "00123", "amount": "1234.5", "when": "2024-01-02 03:04:06", "flag": "TRUE"},
        {"id": "5", "amount": "5", "when": "2024-01-02", "flag": "13:14:15"},
        {
            "id": "12345678901234570",
            "amount": "0.1",
            "when": "2025-01-01 00:00:00",
            "flag": "FALSE",
        },
        {"id": "", "amount": "100000000000000000000", "when": "", "flag": ""},
    ]
    assert lines == [5, 6, 7, 10]
    assert c.numeric["amount"].tolist() == [True] * 4
    assert c.numeric["id"].tolist() == [False, True, True, False]
    assert c.numeric["flag"].tolist() == [False] * 4
    assert bad == [
        BadRow(
            9,
            "5 cells, the header has 4",
            {"id": "x", "amount": "", "when": "", "flag": "", "_extra_1": "stray"},
        )
    ]
    assert read_header(p, SourceOptions(sheet=1)) == ["id", "amount", "when", "flag"]


def test_xlsx_sheet_by_index_default_and_unknown(tmp_path):
    p = _workbook(tmp_path / "book.xlsx")
    assert read_all([p], SourceOptions(sheet=1))[2] == [5, 6, 7, 10]
    assert read_header(p, SourceOptions()) == ["nothing here"]
    for sheet in ("Withdrawals", 7):
        with pytest.raises(InputError, match="its sheets are: 'Summary', 'Deposits'"):
            read_all([p], SourceOptions(sheet=sheet))


def test_xlsx_gz_and_chunks(tmp_path):
    p = gz_copy(_workbook(tmp_path / "book.xlsx"), tmp_path)
    one = read_all([p], SourceOptions(sheet="Deposits"))
    chunks, *two = read_all([p], SourceOptions(sheet="Deposits"), chunk_rows=3)
    assert two == list(one[1:]) and [c.table.num_rows for c in chunks] == [3, 1]


def test_xlsx_empty_sheet(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    p = tmp_path / "empty.xlsx"
    wb.save(p)
    with pytest.raises(InputError, match="empty.xlsx: the sheet is empty"):
        read_header(p, SourceOptions())


def test_not_a_workbook(tmp_path):
    p = tmp_path / "fake.xlsx"
    p.write_text("hello")
    with pytest.raises(InputError, match="fake.xlsx"):
        read_all([p])


# ---------------------------------------------------------------- Parquet


def _parquet(path: Path) -> Path:
    table = pa.table(
        {
            "id": pa.array(["00123", None, "3", None]),
            "n": pa.array([1, 2, None, None], pa.int64()),
            "f": pa.array([0.1, 1e20, float("nan"), None]),
            "f32": pa.array([0.1, 5.0, None, None], pa.float32()),
            "d": pa.array(
                [decimal.Decimal("1000.00"), None, decimal.Decimal("-0.50"), None],
                pa.decimal128(10, 2),
            ),
            "ts": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 600_000), None, None, None], pa.timestamp("ms")),
            "day": pa.array([dt.date(2024, 1, 2), None, None, None]),
            "ok": pa.array([True, None, False, None]),
        }
    )
    pq.write_table(table, path)
    return path


def test_parquet_cells_numeric_and_record_index(tmp_path):
    p = _parquet(tmp_path / "t.parquet")
    chunks, rows, lines, bad = read_all([p])
    assert rows == [
        {
            "id": "00123",
            "n": "1",
            "f": "0.1",
            "f32": "0.1",
            "d": "1000.00",
            "ts": "2024-01-02 03:04:06",
            "day": "2024-01-02",
            "ok": "true",
        },
        {
            "id": "",
            "n": "2",
            "f": "100000000000000000000",
            "f32": "5",
            "d": "",
            "ts": "",
            "day": "",
            "ok": "",
        },
        {"id": "3", "n": "", "f": "", "f32": "", "d": "-0.50", "ts": "", "day": "", "ok": "false"},
    ]
    assert lines == [1, 2, 3] and bad == []  # record 4 is all null: skipped
    num = chunks[0].numeric
    assert num["n"].tolist() == [True, True, False] and num["f"].tolist() == [True, True, False]
    assert num["d"].tolist() == [True, False, True] and not num["id"].any() and not num["ts"].any()
    assert read_header(p, SourceOptions()) == ["id", "n", "f", "f32", "d", "ts", "day", "ok"]
    assert read_all([gz_copy(p, tmp_path)])[1:] == (rows, lines, bad)


def test_parquet_timezone_aware_timestamps_carry_utc_offset(tmp_path):
    p = tmp_path / "tz.parquet"
    ts = pa.array([dt.datetime(2024, 1, 2, 3, 4, 5)], pa.timestamp("s", tz="Europe/Madrid"))
    pq.write_table(pa.table({"ts": ts}), p)
    assert read_all([p])[1] == [{"ts": "2024-01-02 03:04:05+00:00"}]


def test_not_a_parquet_file(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_text("nope")
    with pytest.raises(InputError, match="x.parquet: not a readable Parquet file"):
        read_all([p])


# ---------------------------------------------------------------- read_header


@pytest.mark.parametrize(
    "name, expected",
    [
        ("basic.csv", ["account", "name", "amount"]),
        ("bom_crlf.csv", ["Id", "Name", "Amount"]),
        ("tab.tsv", ["a", "b"]),
        ("events.jsonl", ["id", "amount", "big", "exp", "ok", "no", "nil", "nested", "extra"]),
    ],
)
def test_read_header(name, expected):
    assert read_header(DATA / name, SourceOptions()) == expected

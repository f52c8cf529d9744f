"""Workbooks as back offices write them, and hostile ones (SPEC 11 "Hostile input", SPEC 12 "Real exports")."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import zipfile
from pathlib import Path

import pytest

from t360cli.errors import InputError
from t360cli.readers import Chunk, SourceOptions, read_chunks, read_header

openpyxl = pytest.importorskip("openpyxl")
REDO = "Copy or export the file again, or open it in Excel and save it again as .xlsx."


def read(path: Path, **opts):
    chunks = list(read_chunks([path], SourceOptions(**opts)))
    rows = [r for c in chunks for r in c.table.to_pylist()]
    lines = [int(x) for c in chunks for x in c.lines]
    return chunks, rows, lines


def refusal(path: Path, **opts) -> str:
    with pytest.raises(InputError) as err:
        list(read_chunks([path], SourceOptions(**opts)))
    return str(err.value).replace(f"{path.parent}/", "")  # the message names the path as given


def back_office(path: Path, epoch=None) -> Path:
    """A report: a merged title, a blank row, the header on row 3, data, an error cell, a Total row."""
    wb = openpyxl.Workbook()
    if epoch is not None:
        wb.epoch = epoch
    ws = wb.active
    ws.title = "Deposits"
    ws["A1"] = "Deposits report, June"
    ws.merge_cells("A1:E1")
    ws.append([])
    ws.append(["id", "amount", "when", "flag", "note"])
    ws.append(["D1", 100.5, dt.datetime(2024, 1, 2, 3, 4, 5), True, "ok"])
    ws.append(["D2", None, dt.date(2024, 2, 29), False, None])
    ws["B5"].value, ws["B5"].data_type = "#DIV/0!", "e"  # a cached error value
    ws["E5"].value, ws["E5"].data_type = "#N/A", "e"
    ws.append(["D3", 7, 45000, None, "#N/A"])
    ws["E6"].data_type = "s"  # a text cell that reads like an error (openpyxl would write an error cell)
    ws.append([])
    ws.append(["Total", 107.5])
    wb.save(path)
    return path


# ---------------------------------------------------------------- real exports (SPEC 12)


def test_header_row_skip_footer_errors_and_booleans(tmp_path):
    p = back_office(tmp_path / "report.xlsx")
    chunks, rows, lines = read(p, header_row=3, skip_footer=1)
    assert rows == [
        {"id": "D1", "amount": "100.5", "when": "2024-01-02 03:04:05", "flag": "TRUE", "note": "ok"},
        {"id": "D2", "amount": "#DIV/0!", "when": "2024-02-29", "flag": "FALSE", "note": "#N/A"},
        {"id": "D3", "amount": "7", "when": "45000", "flag": "", "note": "#N/A"},
    ]
    assert lines == [4, 5, 6]  # Excel row numbers; the Total row (8) is the footer
    c = chunks[0]
    assert isinstance(c, Chunk) and c.date1904 is False
    assert {k: v.tolist() for k, v in c.errors.items()} == {
        "amount": [False, True, False],
        "note": [False, True, False],
    }
    assert c.numeric["amount"].tolist() == [True, False, True]
    assert read_header(p, SourceOptions(header_row=3)) == ["id", "amount", "when", "flag", "note"]


def test_without_skip_footer_the_total_row_is_data(tmp_path):
    _, rows, lines = read(back_office(tmp_path / "report.xlsx"), header_row=3)
    assert lines == [4, 5, 6, 8] and rows[-1]["id"] == "Total"


def test_skip_footer_across_chunks(tmp_path):
    p = back_office(tmp_path / "report.xlsx")
    chunks = list(read_chunks([p], SourceOptions(header_row=3, skip_footer=2), chunk_rows=1))
    assert [int(x) for c in chunks for x in c.lines] == [4, 5]


def test_header_row_default_is_the_first_non_empty_row(tmp_path):
    p = back_office(tmp_path / "report.xlsx")
    assert read_header(p, SourceOptions()) == ["Deposits report, June"]


def test_header_row_on_an_empty_row(tmp_path):
    p = back_office(tmp_path / "report.xlsx")
    assert refusal(p, header_row=2) == (
        "report.xlsx: sheet 'Deposits' row 2 is empty, but source.header_row says the header is there. "
        "Set source.header_row to the Excel row number of the header."
    )


def test_date_system_1904(tmp_path):
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    chunks, rows, _ = read(back_office(tmp_path / "mac.xlsx", CALENDAR_MAC_1904), header_row=3, skip_footer=1)
    assert [r["when"] for r in rows] == ["2024-01-02 03:04:05", "2024-02-29", "45000"]
    assert chunks[0].date1904 is True  # the plain serial 45000 is 2027-03-16 in this workbook


def test_1900_serial_60_is_the_fictitious_leap_day(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["when", "n"])
    for v in (1, 59, 60, 60.5, 61):
        ws.append([v, 60])
        ws.cell(ws.max_row, 1).number_format = "yyyy-mm-dd hh:mm"
    wb.save(tmp_path / "leap.xlsx")
    _, rows, _ = read(tmp_path / "leap.xlsx")
    assert [r["when"] for r in rows] == ["1900-01-01", "1900-02-28", "1900-02-29", "1900-02-29 12:00:00", "1900-03-01"]
    assert {r["n"] for r in rows} == {"60"}  # a plain number 60 stays a number


# ---------------------------------------------------------------- hostile input (SPEC 11)


@pytest.mark.parametrize(
    "cell, span",
    [
        ("XFD1048576", "from A1 to XFD1048576, 1,048,576 rows by 16,384 columns"),
        ("XFD5000", "from A1 to XFD5000, 5,000 rows by 16,384 columns"),
    ],
)
def test_a_stray_cell_far_away_is_refused_not_allocated(tmp_path, cell, span):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "amount"])
    ws.append(["x", 1])
    ws[cell] = "oops"
    wb.save(tmp_path / "stray.xlsx")
    assert refusal(tmp_path / "stray.xlsx") == (
        f"stray.xlsx: sheet 'Sheet' has cells {span}, too large a range to load. "
        "Delete the stray cells outside the table (or save the sheet as CSV) and try again."
    )


def test_a_styled_empty_cell_far_away_is_harmless(tmp_path):
    from openpyxl.styles import Font

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "amount"])
    ws.append(["x", 1])
    ws["XFD1048576"].font = Font(bold=True)  # no value: the dimension says A1:XFD1048576
    wb.save(tmp_path / "styled.xlsx")
    assert read(tmp_path / "styled.xlsx")[1] == [{"id": "x", "amount": "1"}]


def _small(tmp_path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "amount"])
    for i in range(300):
        ws.append([f"id-{i}", i * 1.5])
    wb.save(tmp_path / "book.xlsx")
    return tmp_path / "book.xlsx"


def _replace(path: Path, member: str, data: bytes) -> None:
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, data if info.filename == member else src.read(info.filename))


def test_truncated_zip(tmp_path):
    p = _small(tmp_path)
    p.write_bytes(p.read_bytes()[:3000])
    assert refusal(p) == f"book.xlsx: the workbook is damaged (File is not a zip file). {REDO}"


def test_flipped_bytes_in_the_deflate_stream(tmp_path):
    p = _small(tmp_path)
    data = bytearray(p.read_bytes())
    info = zipfile.ZipFile(p).getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename)
    for i in range(start + 200, start + 220):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))
    msg = refusal(p)
    assert msg.startswith("book.xlsx: sheet 'Sheet' is damaged (") and msg.endswith(REDO)


@pytest.mark.parametrize(
    "xml",
    [
        b"this is not xml at all \x00\xff",
        b'<worksheet><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c></row><row r="2"><c r="A2',
        b'<worksheet><sheetData><row r="1"><c r="ZZZZ99" t="n"><v>1</v></c></row></sheetData></worksheet>',
        b'<worksheet><sheetData><row r="1"><c r="A0" t="n"><v>1</v></c></row></sheetData></worksheet>',
    ],
    ids=["garbage", "cut-short", "bad-reference", "row-zero"],
)
def test_corrupt_sheet_xml(tmp_path, xml):
    p = _small(tmp_path)
    _replace(p, "xl/worksheets/sheet1.xml", xml)
    msg = refusal(p)
    assert msg.startswith("book.xlsx: ") and msg.endswith(REDO) and "damaged" in msg


def test_garbage_workbook_xml(tmp_path):
    p = _small(tmp_path)
    _replace(p, "xl/workbook.xml", b"<workbook><sheets><sheet name=")
    assert refusal(p).startswith("book.xlsx: the workbook is damaged (xl/workbook.xml is not valid XML: ")


def test_a_zip_that_is_not_a_workbook(tmp_path):
    p = tmp_path / "book.xlsx"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "hi")
    assert refusal(p) == (
        "book.xlsx is a zip file but not an Excel workbook (it has no xl/workbook.xml). Save the sheet as .xlsx or CSV."
    )


@pytest.mark.parametrize(
    "name, data, words",
    [
        (
            "report.xlsx",
            b"\xef\xbb\xbf\r\n<!DOCTYPE html><html><body><table><tr><td>id</td></tr></table></body></html>",
            "report.xlsx is an HTML page saved with an Excel name, not an Excel workbook. Open it in Excel and save "
            "it as Excel Workbook (.xlsx) or CSV, or export the report as .xlsx or CSV.",
        ),
        (
            "random.xlsx",
            bytes(range(7, 256)) * 4,
            "random.xlsx is not an Excel workbook (.xlsx): it is not a zip file. Check that the file is complete "
            "and really a workbook, or save it as .xlsx or CSV.",
        ),
        (
            "empty.xlsx",
            b"",
            "empty.xlsx is not an Excel workbook (.xlsx): it is empty. Check that the file is complete "
            "and really a workbook, or save it as .xlsx or CSV.",
        ),
        (
            "old.xlsx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600,
            "old.xlsx is an Excel 97-2003 (.xls) or password-protected workbook, which t360 does not read. "
            "Open it in Excel and save it as Excel Workbook (.xlsx) or CSV, without a password.",
        ),
    ],
)
def test_not_a_workbook(tmp_path, name, data, words):
    (tmp_path / name).write_bytes(data)
    assert refusal(tmp_path / name) == words
    with pytest.raises(InputError):
        read_header(tmp_path / name, SourceOptions())


def test_html_with_format_xlsx_and_an_xls_name(tmp_path):
    p = tmp_path / "report.xls"
    p.write_text("<html><body><table><tr><td>id</td></tr></table></body></html>")
    assert refusal(p, format="xlsx").startswith("report.xls is an HTML page saved with an Excel name")


def test_truncated_xlsx_gz(tmp_path):
    p = tmp_path / "book.xlsx.gz"
    p.write_bytes(gzip.compress(_small(tmp_path).read_bytes())[:2000])
    assert refusal(p) == (
        "book.xlsx.gz: the gzip file is damaged (Compressed file ended before the end-of-stream marker was "
        f"reached). {REDO}"
    )


def test_xlsx_gz_reads(tmp_path):
    p = tmp_path / "book.xlsx.gz"
    p.write_bytes(gzip.compress(_small(tmp_path).read_bytes()))
    assert len(read(p)[1]) == 300


@pytest.mark.parametrize("mac", [False, True])
def test_a_back_office_workbook_through_the_pipeline(tmp_path, mac):
    """SPEC 12 end to end: the title block and Total row skipped, an error cell in a mapped
    column a reject naming the error, the same cell in an unmapped column ignored, a plain
    serial number read in the workbook's own date system."""
    from helpers import run_pipeline
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    p = back_office(tmp_path / "report.xlsx", CALENDAR_MAC_1904 if mac else None)
    mapping = (
        "kind: activities\nsource: {header_row: 3, skip_footer: 1}\nfields:\n  customerid: id\n"
        "  eventname: {value: Deposit}\n  Value: {column: amount, type: decimal}\n"
        "  createtime: {column: when, type: datetime}\n"
    )
    out = run_pipeline(tmp_path, {"r.xlsx": p.read_bytes()}, mapping)
    assert (out.counts.rows_read, out.counts.rows_valid, out.counts.rows_rejected) == (3, 2, 1)
    assert out.rejects is not None and "r.xlsx,5,Value: the cell holds the Excel error #DIV/0!," in out.rejects
    day = "2027-03-16 00:00" if mac else "2023-03-15 00:00"  # serial 45000 in each system (1462 days apart)
    assert [r["createtime"] for r in out.records] == ["2024-01-02 03:04", day]


def test_an_html_page_saved_as_xls_is_named(tmp_path):
    """SPEC 12: a report page saved as .xls: say it is HTML, not "cannot tell the format"."""
    p = tmp_path / "page.xls"
    p.write_text("<html><body><table><tr><td>id</td></tr><tr><td>1</td></tr></table></body></html>")
    with pytest.raises(InputError, match="is an HTML page saved with an Excel name"):
        read_header(p, SourceOptions())


@pytest.mark.parametrize("far", ["XFD1048576", "A1048576"])
def test_mapping_init_on_a_workbook_with_a_stray_cell_is_one_sentence(tmp_path, far):
    """SPEC 11: `mapping init` opens sheets as the reader does (its real extent checked first):
    a stray cell far away is a sentence, never an allocation of the whole range."""
    import subprocess
    import sys

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Login", "Date", "Amount", "Currency", "Status"])
    ws.append(["1", "2025-07-01 10:00", 2.5, "EUR", "Approved"])
    ws[far] = "x"  # with five columns, a million rows is more than a sheet may take
    wb.save(tmp_path / "stray.xlsx")
    t360 = Path(sys.executable).with_name("t360")
    out = subprocess.run(
        [str(t360), "mapping", "init", "stray.xlsx", "--kind", "activities"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "too large a range to load" in out.stderr and "Traceback" not in out.stderr

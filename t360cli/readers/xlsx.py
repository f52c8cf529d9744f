"""XLSX reader (python-calamine): cells as text, a mask of numeric cells, Excel's quirks (SPEC 12).

The sheet is checked first (readers.xlsx_scan): its real extent, error cells and date system.
Rows above `header_row` are ignored, the last `skip_footer` non-empty rows are held back, and
line numbers are Excel row numbers.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.errors import InputError, T360Error
from t360cli.readers.base import (
    BadRow,
    Chunk,
    Source,
    SourceOptions,
    _check_names,
    _ragged,
    _text_table,
    float_column,
    float_text,
    is_gzipped,
)
from t360cli.readers.xlsx_scan import MAX_GUNZIPPED, SheetScan, damaged, scan_sheet

Cell = str | float | int | bool | dt.datetime | dt.date | dt.time | dt.timedelta | None  # what calamine gives
_REDO = "Copy or export the file again, or open it in Excel and save it again as .xlsx."


def open_workbook(src: Source) -> io.BytesIO | str:
    """What calamine opens (a path, or the gunzipped bytes), after checking the file is a zip at all."""
    if is_gzipped(src.path):
        with damaged(src, "the gzip file"), gzip.open(src.path, "rb") as f:
            data = f.read(MAX_GUNZIPPED + 1)
        if len(data) > MAX_GUNZIPPED:
            raise InputError(
                f"{src.name}: the workbook expands to more than {MAX_GUNZIPPED >> 20} MB.",
                "Unzip it and save the sheet as CSV.",
            )
        _sniff(src, data[:2048])
        return io.BytesIO(data)
    with open(src.path, "rb") as f:
        _sniff(src, f.read(2048))
    if src.path.suffix.lower() == ".xlsx":
        return str(src.path)
    with open(src.path, "rb") as f:  # calamine tells the format by the name's extension
        data = f.read(MAX_GUNZIPPED + 1)
    if len(data) > MAX_GUNZIPPED:
        raise InputError(f"{src.name}: a workbook larger than {MAX_GUNZIPPED >> 20} MB.", "Save the sheet as CSV.")
    return io.BytesIO(data)


def _sniff(src: Source, head: bytes) -> None:
    if head.startswith(b"PK\x03\x04"):
        return
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(
            f"{src.name} is an Excel 97-2003 (.xls) or password-protected workbook, which t360 does not read.",
            "Open it in Excel and save it as Excel Workbook (.xlsx) or CSV, without a password.",
        )
    text = head.lstrip(b"\xef\xbb\xbf\xff\xfe \t\r\n").replace(b"\x00", b"").lower()
    if text.startswith(b"<") and any(tag in text for tag in (b"<html", b"<!doctype html", b"<table", b"<body")):
        raise InputError(
            f"{src.name} is an HTML page saved with an Excel name, not an Excel workbook.",
            "Open it in Excel and save it as Excel Workbook (.xlsx) or CSV, or export the report as .xlsx or CSV.",
        )
    if text.startswith(b"<") and b"urn:schemas-microsoft-com:office:spreadsheet" in text:
        raise InputError(
            f"{src.name} is an XML Spreadsheet 2003 file, not an Excel workbook (.xlsx).",
            "Open it in Excel and save it as Excel Workbook (.xlsx) or CSV.",
        )
    what = "empty" if not head else "not a zip file"
    raise InputError(
        f"{src.name} is not an Excel workbook (.xlsx): it is {what}.",
        "Check that the file is complete and really a workbook, or save it as .xlsx or CSV.",
    )


class ExcelError(str):
    """The text of an error cell (`#DIV/0!`, `#N/A`...): calamine reads them as empty."""


@dataclass
class _Sheet:
    src: Source
    xl: Any  # a python_calamine CalamineSheet
    scan: SheetScan
    header_row: int
    skip_footer: int


def _xl_sheet(src: Source, opts: SourceOptions) -> _Sheet:
    """The chosen sheet, once its zip, size and cells have been checked."""
    from python_calamine import CalamineWorkbook

    raw = open_workbook(src)
    scan = scan_sheet(src, raw, opts.sheet)
    if not isinstance(raw, str):
        raw.seek(0)
    try:
        wb = CalamineWorkbook.from_object(raw)
        sheet = wb.get_sheet_by_name(scan.name)
    except BaseException as e:  # calamine raises its own types, and PanicException (a BaseException)
        if isinstance(e, (T360Error, KeyboardInterrupt, SystemExit, GeneratorExit, OSError)):
            raise
        raise InputError(f"{src.name}: sheet {scan.name!r} is damaged ({_why(e)}).", _REDO) from e
    return _Sheet(src, sheet, scan, max(1, opts.header_row), max(0, opts.skip_footer))


def open_sheet(path: Path, sheet: str | int | None) -> Any:
    """A sheet as python-calamine gives it, once its real extent has been checked (for
    `mapping init`, which looks at a workbook's sheets itself)."""
    return _xl_sheet(Source(0, path, str(path), "xlsx"), SourceOptions(sheet=sheet)).xl


def _why(e: BaseException) -> str:
    text = " ".join(str(e).split())[:160].rstrip(".")
    return text or type(e).__name__


class _Rows:
    """(Excel row number, cells) from `header_row` on; error cells and 1900-02-29 put back in."""

    def __init__(self, sheet: _Sheet) -> None:
        self.sheet = sheet
        self.width: int | None = None  # set once the header is known: error cells right of it are ignored
        self._it = self._rows()

    def __iter__(self) -> _Rows:
        return self

    def __next__(self) -> tuple[int, list[Cell]]:
        return next(self._it)

    def _rows(self) -> Iterator[tuple[int, list[Cell]]]:
        sheet, scan = self.sheet.xl, self.sheet.scan
        start_row, start_col = sheet.start or (0, 0)
        it = iter(sheet.iter_rows())
        try:
            first = next(it, None)
            if first is None:
                return
            # iter_rows starts at row 1 (rows above the used range come back empty) or at `start`
            no = 1 if start_row == 0 or first.count("") == len(first) else start_row + 1
            sixties = {r for r, _ in scan.sixties}
            cells: list[Cell] | None = first
            while cells is not None:
                if no >= self.sheet.header_row:
                    if no in scan.errors:
                        self._errors(cells, scan.errors[no], start_col)
                    if no in sixties:
                        _sixties(cells, no, scan, start_col)
                    yield no, cells
                no, cells = no + 1, next(it, None)
        except (T360Error, KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as e:
            raise InputError(f"{self.sheet.src.name}: sheet {scan.name!r} row {no} cannot be read ({_why(e)}).") from e

    def _errors(self, cells: list[Cell], errors: dict[int, str], start_col: int) -> None:
        for col, text in errors.items():
            i = col - 1 - start_col
            if 0 <= i < len(cells) and (self.width is None or i < self.width) and cells[i] == "":
                cells[i] = ExcelError(text)


def _sixties(cells: list[Cell], no: int, scan: SheetScan, start_col: int) -> None:
    """A date cell valued 60 to 61 in the 1900 system is Excel's 1900-02-29: text that no date parser takes."""
    for i, v in enumerate(cells):
        if isinstance(v, dt.date) and (no, i + 1 + start_col) in scan.sixties:
            cells[i] = "1900-02-29" + (f" {_xl_text(v)[11:]}" if isinstance(v, dt.datetime) else "")


def _xl_rows(sheet: _Sheet) -> _Rows:
    return _Rows(sheet)


def _xl_head(rows: _Rows, src: Source) -> tuple[int, list[str]]:
    """The header: Excel row `header_row`, or with the default 1, the first non-empty row."""
    want, name = rows.sheet.header_row, rows.sheet.scan.name
    for no, cells in rows:
        if cells.count("") == len(cells):
            if want > 1:
                break
            continue
        texts = [_xl_text(c) for c in cells]
        while texts and not texts[-1].strip():
            texts.pop()  # the used range may reach past the last named column
        rows.width = len(texts)
        return no, _check_names(texts, src, no)
    if want > 1:
        raise InputError(
            f"{src.name}: sheet {name!r} row {want} is empty, but source.header_row says the header is there.",
            "Set source.header_row to the Excel row number of the header.",
        )
    raise InputError(f"{src.name}: the sheet is empty.", "Expected a header row.")


def _read_xlsx(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    sheet = _xl_sheet(src, opts)
    rows = _xl_rows(sheet)
    _, names = _xl_head(rows, src)
    width, footer = len(names), sheet.skip_footer
    held: deque[tuple[int, list[Cell]]] = deque()  # the last `skip_footer` non-empty rows seen
    buf: list[list[Cell]] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    for no, cells in rows:
        if cells.count("") == len(cells):
            continue
        if footer:
            held.append((no, cells))
            if len(held) <= footer:
                continue
            no, cells = held.popleft()
        extra = cells[width:]
        if extra and extra.count("") != len(extra):
            bad.append(_ragged([_xl_text(c) for c in cells], names, no))
            continue
        buf.append(cells[:width] if extra else cells)
        lines.append(no)
        if len(buf) == size:
            yield _xl_chunk(src, sheet.scan, names, buf, lines, bad)
            buf, lines, bad = [], [], []
    if buf or bad:
        yield _xl_chunk(src, sheet.scan, names, buf, lines, bad)


def _xl_chunk(
    src: Source, scan: SheetScan, names: list[str], rows: list[list[Cell]], lines: list[int], bad: list[BadRow]
) -> Chunk:
    cols: list[tuple[Cell, ...]] = list(zip(*rows, strict=False)) if rows else [()] * len(names)
    cols += [("",) * len(rows)] * (len(names) - len(cols))
    texts: list[Sequence[str]] = []
    numeric: dict[str, npt.NDArray[np.bool_]] = {}
    errors: dict[str, npt.NDArray[np.bool_]] = {}
    for name, col in zip(names, cols, strict=False):
        types = set(map(type, col))
        if ExcelError in types:
            errors[name] = np.fromiter((type(v) is ExcelError for v in col), bool, len(col))
            col = tuple(str(v) if type(v) is ExcelError else v for v in col)
            types = set(map(type, col))
        numeric[name] = (
            np.fromiter((type(v) in (int, float) for v in col), bool, len(col))
            if types & {int, float}
            else np.zeros(len(col), bool)
        )
        texts.append(_xl_texts(col, types))
    table = _text_table(names, texts)
    return Chunk(src, list(names), table, np.array(lines, np.int64), numeric, bad, scan.date1904, errors)


def _xl_texts(col: Sequence[Cell], types: set[type]) -> Sequence[str]:
    """A column's cells as text; the usual all-float and all-datetime columns in one go."""
    if types <= {str}:
        return col  # type: ignore[return-value]  # every cell is a str (checked just above)
    if types <= {str, float}:
        conv = float_column(pa.array([v for v in col if type(v) is float], pa.float64()))[0]
    elif types <= {str, dt.datetime}:
        ts = pa.array([v for v in col if type(v) is not str], pa.timestamp("us"))
        ts = pc.cast(pc.round_temporal(ts, unit="second"), pa.timestamp("s"))
        conv = pc.strftime(ts, format="%Y-%m-%d %H:%M:%S")
    else:
        return [v if type(v) is str else _xl_text(v) for v in col]
    it = iter(conv.to_pylist())
    return [v if type(v) is str else next(it) for v in col]


def _xl_text(value: Cell) -> str:
    """One cell as text: numbers as `float_text`, booleans TRUE/FALSE, times rounded to the second."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):  # before int: a bool is an int
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        rounded = value + dt.timedelta(microseconds=500_000)
        return rounded.replace(microsecond=0).isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):  # rounded half up, as datetimes; 23:59:59.5 stays in its day
        secs = min(86_399, value.hour * 3600 + value.minute * 60 + value.second + (value.microsecond >= 500_000))
        return _clock(secs)
    if isinstance(value, dt.timedelta):
        return _clock(int(value.total_seconds() + 0.5))
    return "" if value is None else str(value)


def _clock(secs: int) -> str:
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"

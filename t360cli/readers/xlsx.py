"""XLSX reader (python-calamine): cells as text, a mask of numeric cells."""

from __future__ import annotations

import datetime as dt
import gzip
import io
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.errors import InputError
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

Cell = str | float | int | bool | dt.datetime | dt.date | dt.time | dt.timedelta | None  # what calamine gives


def _xl_sheet(src: Source, opts: SourceOptions) -> Any:
    """The chosen sheet (a python_calamine CalamineSheet; the library has no type stubs)."""
    from python_calamine import CalamineWorkbook

    try:
        if is_gzipped(src.path):
            with gzip.open(src.path, "rb") as gunzipped:
                wb = CalamineWorkbook.from_filelike(io.BytesIO(gunzipped.read()))
        else:
            wb = CalamineWorkbook.from_path(str(src.path))
    except (OSError, EOFError):
        raise
    except Exception as e:  # calamine raises its own error types
        raise InputError(f"{src.name}: cannot read as an Excel workbook: {e}.") from e
    names, want = wb.sheet_names, opts.sheet
    if want is None:
        want = 0
    if isinstance(want, str) and want not in names and want.strip().isdigit():
        want = int(want)
    if (isinstance(want, int) and not 0 <= want < len(names)) or (isinstance(want, str) and want not in names):
        raise InputError(
            f"{src.name}: no sheet {want!r}; its sheets are: {', '.join(map(repr, names))}.",
            "Set source.sheet to one of these names or a 0-based index.",
        )
    return wb.get_sheet_by_index(want) if isinstance(want, int) else wb.get_sheet_by_name(want)


def _xl_rows(sheet: Any) -> Iterator[tuple[int, list[Cell]]]:
    """(Excel row number, cells) for each row of the sheet's used columns."""
    it = iter(sheet.iter_rows())
    first = next(it, None)
    if first is None:
        return
    start = (sheet.start or (0, 0))[0]
    # iter_rows starts at row 1 (rows above the used range come back empty) or at `start`
    base = 1 if start == 0 or first.count("") == len(first) else start + 1
    yield base, first
    yield from enumerate(it, base + 1)


def _xl_head(rows: Iterator[tuple[int, list[Cell]]], src: Source) -> tuple[int, list[str]]:
    for no, cells in rows:
        if cells.count("") != len(cells):
            texts = [_xl_text(c) for c in cells]
            while texts and not texts[-1].strip():
                texts.pop()  # the used range may reach past the last named column
            return no, _check_names(texts, src, no)
    raise InputError(f"{src.name}: the sheet is empty.", "Expected a header row.")


def _read_xlsx(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    rows = _xl_rows(_xl_sheet(src, opts))
    _, names = _xl_head(rows, src)
    width = len(names)
    buf: list[list[Cell]] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    for no, cells in rows:
        extra = cells[width:]
        if extra and extra.count("") != len(extra):
            bad.append(_ragged([_xl_text(c) for c in cells], names, no))
            continue
        if cells.count("") == len(cells):
            continue
        buf.append(cells)
        lines.append(no)
        if len(buf) == size:
            yield _xl_chunk(src, names, buf, lines, bad)
            buf, lines, bad = [], [], []
    if buf or bad:
        yield _xl_chunk(src, names, buf, lines, bad)


def _xl_chunk(src: Source, names: list[str], rows: list[list[Cell]], lines: list[int], bad: list[BadRow]) -> Chunk:
    cols: list[tuple[Cell, ...]] = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    texts: list[Sequence[str]] = []
    numeric: dict[str, npt.NDArray[np.bool_]] = {}
    for name, col in zip(names, cols, strict=False):
        types = set(map(type, col))
        numeric[name] = (
            np.fromiter((type(v) in (int, float) for v in col), bool, len(col))
            if types & {int, float}
            else np.zeros(len(col), bool)
        )
        texts.append(_xl_texts(col, types))
    return Chunk(src, list(names), _text_table(names, texts), np.array(lines, np.int64), numeric, bad)


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
        return value
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

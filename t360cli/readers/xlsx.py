"""XLSX reader (python-calamine): cells as text, a mask of numeric cells."""

from __future__ import annotations

import datetime as dt
import gzip
import io
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.errors import InputError
from t360cli.readers.base import BadRow, Chunk, Source, SourceOptions, _check_names, _ragged, _text_table
from t360cli.readers.parquet import _pq_float


def _xl_sheet(src: Source, opts: SourceOptions):
    from python_calamine import CalamineWorkbook

    try:
        if src.path.name.lower().endswith(".gz"):
            with gzip.open(src.path, "rb") as f:
                wb = CalamineWorkbook.from_filelike(io.BytesIO(f.read()))
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


def _xl_rows(sheet) -> Iterator[tuple[int, list]]:
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


def _xl_head(rows: Iterator[tuple[int, list]], src: Source) -> tuple[int, list[str]]:
    for no, cells in rows:
        if cells.count("") != len(cells):
            texts = [c if type(c) is str else _xl_text(c) for c in cells]
            while texts and not texts[-1].strip():
                texts.pop()  # the used range may reach past the last named column
            return no, _check_names(texts, src, no)
    raise InputError(f"{src.name}: the sheet is empty.", "Expected a header row.")


def _read_xlsx(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    rows = _xl_rows(_xl_sheet(src, opts))
    _, names = _xl_head(rows, src)
    m = len(names)
    buf: list[list] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    for no, cells in rows:
        extra = cells[m:]
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


def _xl_chunk(src: Source, names: list[str], rows: list[list], lines: list[int], bad: list) -> Chunk:
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    texts, numeric = [], {}
    for name, col in zip(names, cols, strict=False):
        types = set(map(type, col))
        numeric[name] = (
            np.fromiter((type(v) in (int, float) for v in col), bool, len(col))
            if types & {int, float}
            else np.zeros(len(col), bool)
        )
        texts.append(_xl_texts(col, types))
    return Chunk(src, list(names), _text_table(names, texts), np.array(lines, np.int64), numeric, bad)


def _xl_texts(col: Sequence, types: set[type]) -> Sequence[str]:
    """A column's cells as text; the usual all-float and all-datetime columns in one go."""
    if types <= {str}:
        return col
    if types <= {str, float}:
        conv = _pq_float(pa.array([v for v in col if type(v) is float], pa.float64()))[0]
    elif types <= {str, dt.datetime}:
        ts = pa.array([v for v in col if type(v) is not str], pa.timestamp("us"))
        ts = pc.cast(pc.round_temporal(ts, unit="second"), pa.timestamp("s"))
        conv = pc.strftime(ts, format="%Y-%m-%d %H:%M:%S")
    else:
        return [v if type(v) is str else _xl_text(v) for v in col]
    it = iter(conv.to_pylist())
    return [v if type(v) is str else next(it) for v in col]


def _float_text(x: float) -> str:
    """Shortest exact positional text: 0.1, 1234.5, 5 (no exponent)."""
    s = repr(x)
    if "e" in s:
        return np.format_float_positional(x, trim="-")
    return s[:-2] if s.endswith(".0") else s


def _xl_text(v: object) -> str:
    t = type(v)
    if t is str:
        return v  # type: ignore[return-value]
    if t is float:
        return _float_text(v)  # type: ignore[arg-type]
    if t is bool:
        return "TRUE" if v else "FALSE"
    if t is int:
        return str(v)
    if t is dt.datetime:
        v = v + dt.timedelta(microseconds=500_000)  # type: ignore[operator]
        return v.replace(microsecond=0).isoformat(" ")  # type: ignore[union-attr]
    if t is dt.date:
        return v.isoformat()  # type: ignore[union-attr]
    if t is dt.time:  # rounded half up, as datetimes; 23:59:59.5 stays in its day
        secs = min(86_399, v.hour * 3600 + v.minute * 60 + v.second + (v.microsecond >= 500_000))  # type: ignore
        return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    if t is dt.timedelta:
        secs = int(v.total_seconds() + 0.5)  # type: ignore[union-attr]
        return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return "" if v is None else str(v)

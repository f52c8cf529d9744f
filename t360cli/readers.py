"""Streaming readers: csv tsv xlsx jsonl json parquet (each maybe gzipped) -> Chunks of text."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import glob
import gzip
import hashlib
import io
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from t360cli.errors import InputError

FORMATS = ("csv", "tsv", "xlsx", "jsonl", "json", "parquet")
_EXT = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".xlsx": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
_BOM = codecs.BOM_UTF8
_ENC_HINT = (
    "Set source.encoding in the mapping to the file's encoding (for example cp1252 or latin-1)."
)
_HEADER_SCAN = 1_000  # json/jsonl: objects whose keys make up read_header's answer


@dataclass(frozen=True)
class SourceOptions:
    format: str | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"
    sheet: str | int | None = None


@dataclass(frozen=True)
class Source:
    index: int
    path: Path
    name: str
    format: str


@dataclass
class BadRow:
    line: int
    reason: str
    cells: dict[str, str]


@dataclass
class Chunk:
    source: Source
    columns: list[str]
    table: pa.Table
    lines: np.ndarray
    numeric: dict[str, np.ndarray]
    bad: list[BadRow] = field(default_factory=list)


# ---------------------------------------------------------------- public API


def resolve_inputs(patterns: Sequence[str]) -> list[Path]:
    """Expand paths and globs (sorted); refuse missing files and directories; drop duplicates."""
    out: dict[str, Path] = {}
    for pat in patterns:
        plain = Path(pat).expanduser()
        if any(ch in pat for ch in "*?[") and not plain.exists():
            hits = [Path(h) for h in sorted(glob.glob(os.path.expanduser(pat), recursive=True))]
            hits = [h for h in hits if h.is_file()]
            if not hits:
                raise InputError(
                    f"No file matches {pat!r}.", "Check the pattern and the directory."
                )
        elif not plain.exists():
            raise InputError(f"{pat}: no such file.", "Check the path.")
        elif plain.is_dir():
            raise InputError(
                f"{pat} is a directory, not a file.",
                f"Give the files in it, or a glob such as '{pat}/*.csv'.",
            )
        else:
            hits = [plain]
        for h in hits:
            out.setdefault(os.path.abspath(h), h)
    return list(out.values())


def read_chunks(
    paths: Sequence[Path], opts: SourceOptions, chunk_rows: int = 50_000
) -> Iterator[Chunk]:
    """Rows of every file in turn, at most chunk_rows per chunk; a chunk never spans files."""
    for i, path in enumerate(paths):
        src = Source(i, Path(path), str(path), _format_of(Path(path), opts))
        reader = {
            "csv": _read_csv,
            "tsv": _read_csv,
            "xlsx": _read_xlsx,
            "jsonl": _read_jsonl,
            "json": _read_json,
            "parquet": _read_parquet,
        }[src.format]
        with _io_errors(src):
            yield from reader(src, opts, max(1, chunk_rows))


def read_header(path: Path, opts: SourceOptions) -> list[str]:
    """The file's column names, reading only what that needs."""
    src = Source(0, Path(path), str(path), _format_of(Path(path), opts))
    with _io_errors(src):
        if src.format in ("csv", "tsv"):
            return _csv_head(src, opts).names
        if src.format == "xlsx":
            return _xl_head(_xl_rows(_xl_sheet(src, opts)), src)[1]
        if src.format == "parquet":
            with _parquet_file(src) as pf:
                return _check_names(pf.schema_arrow.names, src, None)
        objs = _jsonl_objects(src, opts) if src.format == "jsonl" else _json_objects(src, opts)
        keys = (
            o.keys()
            for _, o in itertools.islice((x for x in objs if isinstance(x[1], dict)), _HEADER_SCAN)
        )
        return list(dict.fromkeys(itertools.chain.from_iterable(keys)))


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes, streamed."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}.") from e


# ---------------------------------------------------------------- shared helpers


class _io_errors:
    """Turn OS, gzip and decoding failures into InputError naming the file."""

    def __init__(self, src: Source) -> None:
        self.src = src

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ, exc, tb) -> None:
        if isinstance(exc, LookupError):
            raise InputError(
                f"{self.src.name}: unknown encoding: {exc}.",
                "Set source.encoding to a Python codec name such as utf-8 or cp1252.",
            ) from exc
        if isinstance(exc, (OSError, EOFError)):
            why = getattr(exc, "strerror", None) or str(exc)
            raise InputError(
                f"{self.src.name}: cannot read: {why}.",
                "Check that the file is complete and of the format its name says.",
            ) from exc


def _format_of(path: Path, opts: SourceOptions) -> str:
    if opts.format:
        if opts.format not in FORMATS:
            raise InputError(
                f"Unknown source.format {opts.format!r}.", f"Use one of: {', '.join(FORMATS)}."
            )
        return opts.format
    name = path.name.lower().removesuffix(".gz")
    fmt = _EXT.get(os.path.splitext(name)[1])
    if fmt is None:
        raise InputError(
            f"{path}: cannot tell the format from the file name.",
            f"Set source.format in the mapping ({', '.join(FORMATS)}).",
        )
    return fmt


def _open_bin(path: Path):
    """Binary stream of the file, gunzipped if its name ends in .gz, past a UTF-8 BOM."""
    f = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    if f.peek(3)[:3] == _BOM:
        f.read(3)
    return f


def _open_text(src: Source, encoding: str) -> io.TextIOWrapper:
    codecs.lookup(encoding)  # an unknown name fails here, before a file is open
    return io.TextIOWrapper(_open_bin(src.path), encoding=encoding, newline="", errors="strict")


def _decode_error(src: Source, encoding: str, line: int | None = None) -> InputError:
    if line is None:  # find the first physical line that does not decode
        dec = codecs.getincrementaldecoder(encoding)()
        with _open_bin(src.path) as f:
            for no, raw in enumerate(f, 1):
                try:
                    dec.decode(raw)
                except UnicodeDecodeError:
                    line = no
                    break
    where = f"line {line}" if line else "somewhere"
    return InputError(f"{src.name}: {where} is not valid {encoding} text.", _ENC_HINT)


def _check_names(raw: Sequence[str], src: Source, line: int | None) -> list[str]:
    """Trim header names; an empty or repeated one is an InputError naming its position."""
    where = f"{src.name}: line {line}" if line else src.name
    names = [str(n).strip() for n in raw]
    seen: dict[str, int] = {}
    for i, n in enumerate(names, 1):
        if not n:
            raise InputError(
                f"{where}: header column {i} has no name.", "Give every column a name."
            )
        if n in seen:
            raise InputError(
                f"{where}: header column {i} {n!r} repeats column {seen[n]}.",
                "Column names must be unique.",
            )
        seen[n] = i
    return names


def _ragged(cells: Sequence[str], names: list[str], line: int) -> BadRow:
    out = dict(zip(names, cells, strict=False))
    out.update({f"_extra_{k}": c for k, c in enumerate(cells[len(names) :], 1)})
    return BadRow(line, f"{len(cells)} cells, the header has {len(names)}", out)


def _text_table(names: list[str], cols: Sequence) -> pa.Table:
    return pa.Table.from_arrays([pa.array(c, pa.string()) for c in cols], names=names)


# ---------------------------------------------------------------- CSV / TSV


@dataclass
class _Head:
    names: list[str]
    delimiter: str
    encoding: str
    skip: int  # records up to and including the header (blank lines before it count)


class _SlowPath(Exception):
    """The fast reader met a row it cannot place exactly: re-read with the csv module."""


def _sniff(line: str) -> str:
    counts = {d: line.count(d) for d in ",;\t|"}
    return max(counts, key=counts.__getitem__)  # first of the maxima: ',' wins a tie


def _csv_head(src: Source, opts: SourceOptions) -> _Head:
    enc = opts.encoding
    try:
        with _open_text(src, enc) as f:
            skipped = 0
            for line in f:
                if line.strip():
                    break
                skipped += 1
            else:
                raise InputError(f"{src.name}: the file is empty.", "Expected a header line.")
            delim = opts.delimiter or ("\t" if src.format == "tsv" else _sniff(line))
            rd = csv.reader(itertools.chain([line], f), delimiter=delim)
            names = _check_names(next(rd), src, skipped + 1)
    except UnicodeDecodeError as e:
        raise _decode_error(src, enc) from e
    return _Head(names, delim, enc, skipped + 1)


def _read_csv(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    head = _csv_head(src, opts)
    out = _Emitter(src, head.names, size)
    state = {"records": 0, "line": 1}
    try:
        for table, lines in _csv_fast(src, head, state):
            yield from out.add(table, lines)
    except _SlowPath:
        for table, lines, bad in _csv_slow(src, head, max(head.skip, state["records"]), size):
            yield from out.add(table, lines, bad)
    yield from out.flush()


def _csv_fast(src: Source, head: _Head, state: dict) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """pyarrow's streaming reader; raises _SlowPath on a ragged row or a decoding failure."""
    keys = [f"c{i}" for i in range(len(head.names))]
    invalid: list[int] = []

    def on_invalid(row) -> str:
        invalid.append(1)
        return "skip"

    gz = src.path.name.lower().endswith(".gz")
    stream = pa.input_stream(str(src.path), compression="gzip" if gz else None)
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                column_names=keys, block_size=1 << 20, encoding=_arrow_encoding(head.encoding)
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=head.delimiter,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(keys, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            if invalid:
                raise _SlowPath
            yield from _fast_batch(batch, head, state)
    except (pa.ArrowException, UnicodeError, ValueError, OSError, EOFError) as e:
        raise _SlowPath from e
    finally:
        stream.close()


def _fast_batch(
    batch: pa.RecordBatch, head: _Head, state: dict
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Line numbers of a batch's records (vectorised), minus the header and all-empty rows."""
    n = batch.num_rows
    if n == 0:
        return
    breaks = np.zeros(n, np.int64)
    length = np.zeros(n, np.int64)
    for col in batch.columns:
        length += pc.binary_length(col).to_numpy(zero_copy_only=False)
        data = _text_bytes(col)
        if b"\n" in data:
            breaks += pc.count_substring(col, "\n").to_numpy(zero_copy_only=False)
        if b"\r" in data:  # a lone CR is a line break too; CRLF counts once
            breaks += pc.count_substring(col, "\r").to_numpy(
                zero_copy_only=False
            ) - pc.count_substring(col, "\r\n").to_numpy(zero_copy_only=False)
    before = np.concatenate(([0], np.cumsum(breaks)[:-1]))
    lines = state["line"] + np.arange(n, dtype=np.int64) + before
    keep = length > 0
    keep[: max(0, head.skip - state["records"])] = False
    state["records"] += n
    state["line"] = int(lines[-1] + 1 + breaks[-1])
    table = pa.Table.from_batches([batch]).rename_columns(head.names)
    if not keep.all():
        table, lines = table.filter(pa.array(keep)), lines[keep]
    if len(lines):
        yield table, lines


def _arrow_encoding(encoding: str) -> str:
    return "utf8" if codecs.lookup(encoding).name == "utf-8" else encoding


def _text_bytes(col: pa.Array) -> bytes:
    """The character bytes of a string array (a cheap way to test for a byte with `in`)."""
    values = col.buffers()[2]
    if values is None or len(col) == 0:
        return b""
    offsets = np.frombuffer(col.buffers()[1], np.int32)[col.offset : col.offset + len(col) + 1]
    return values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


def _csv_slow(
    src: Source, head: _Head, skip: int, size: int
) -> Iterator[tuple[pa.Table, np.ndarray, list]]:
    """Exact reading with the csv module from the start of the file, past `skip` records."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    names, n = head.names, len(head.names)
    cols: list[list[str]] = [[] for _ in range(n)]
    lines: list[int] = []
    bad: list[BadRow] = []
    with _open_text(src, head.encoding) as f:
        rd = csv.reader(f, delimiter=head.delimiter)
        prev = 0
        for k, rec in enumerate(_guarded(rd, src, head.encoding)):
            start, prev = prev + 1, rd.line_num
            if k < skip or not any(rec):
                continue
            if len(rec) != n:
                if "".join(rec).strip():  # a stray line of spaces is not a bad row
                    bad.append(_ragged(rec, names, start))
                continue
            for col, cell in zip(cols, rec, strict=True):
                col.append(cell)
            lines.append(start)
            if len(lines) >= size:
                yield _text_table(names, cols), np.array(lines, np.int64), bad
                cols, lines, bad = [[] for _ in range(n)], [], []
    yield _text_table(names, cols), np.array(lines, np.int64), bad


def _guarded(rd, src: Source, encoding: str) -> Iterator[list[str]]:
    it = iter(rd)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError as e:
            raise _decode_error(src, encoding) from e
        except csv.Error as e:
            raise InputError(
                f"{src.name}: line {rd.line_num}: cannot split into cells: {e}.",
                "Check the quoting around that line.",
            ) from e
        yield rec


class _Emitter:
    """Re-slices pieces of rows into chunks of exactly `size` rows (the last one shorter)."""

    def __init__(self, src: Source, names: list[str], size: int) -> None:
        self.src, self.names, self.size = src, names, size
        self.parts: list[pa.Table] = []
        self.lines: list[np.ndarray] = []
        self.bad: list[BadRow] = []
        self.n = 0

    def add(
        self, table: pa.Table, lines: np.ndarray, bad: Sequence[BadRow] = ()
    ) -> Iterator[Chunk]:
        self.bad.extend(bad)
        if len(lines):
            self.parts.append(table)
            self.lines.append(lines)
            self.n += len(lines)
        while self.n >= self.size:
            yield self._take(self.size)

    def flush(self) -> Iterator[Chunk]:
        if self.n or self.bad:
            yield self._take(self.n)

    def _take(self, k: int) -> Chunk:
        table = (
            pa.concat_tables(self.parts)
            if self.parts
            else _text_table(self.names, [[]] * len(self.names))
        )
        lines = np.concatenate(self.lines) if self.lines else np.zeros(0, np.int64)
        rest = table.slice(k)
        self.parts, self.lines, self.n = (
            ([rest], [lines[k:]], self.n - k) if rest.num_rows else ([], [], 0)
        )
        last = lines[k - 1] if k and self.n else np.iinfo(np.int64).max  # later bad rows wait
        bad = [b for b in self.bad if b.line <= last]
        self.bad = [b for b in self.bad if b.line > last]
        return Chunk(self.src, list(self.names), table.slice(0, k), lines[:k], {}, bad)


# ---------------------------------------------------------------- XLSX


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
    if (isinstance(want, int) and not 0 <= want < len(names)) or (
        isinstance(want, str) and want not in names
    ):
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


def _xl_chunk(
    src: Source, names: list[str], rows: list[list], lines: list[int], bad: list
) -> Chunk:
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
    return Chunk(
        src, list(names), _text_table(names, texts), np.array(lines, np.int64), numeric, bad
    )


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


# ---------------------------------------------------------------- JSON Lines / JSON array


class _Num(str):
    """The exact source text of a JSON number."""

    __slots__ = ()


_DECODER = json.JSONDecoder(parse_float=_Num, parse_int=_Num)
_WS = re.compile(r"[ \t\n\r]*")


def _compact(v: object) -> str:
    """Compact JSON text of a nested value, numbers as written in the source."""
    if isinstance(v, dict):
        return (
            "{"
            + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _compact(x) for k, x in v.items())
            + "}"
        )
    if isinstance(v, list):
        return "[" + ",".join(_compact(x) for x in v) + "]"
    if type(v) is _Num:
        return v  # type: ignore[return-value]
    return json.dumps(v, ensure_ascii=False)


def _jtext(v: object) -> str:
    if v is None:
        return ""
    if v is True or v is False:
        return "true" if v else "false"
    return _compact(v)


def _blank(obj: dict) -> bool:
    """True when every value is null or "" (any() settles the usual case in C)."""
    return not any(obj.values()) and all(v is None or v == "" for v in obj.values())


def _json_chunk(src: Source, rows: list[dict], lines: list[int], bad: list[BadRow]) -> Chunk:
    names = list(dict.fromkeys(itertools.chain.from_iterable(rows)))
    cols, numeric = [], {}
    for k in names:
        col = [r.get(k, "") for r in rows]
        types = set(map(type, col))
        numeric[k] = (
            np.fromiter((type(v) is _Num for v in col), bool, len(col))
            if _Num in types
            else np.zeros(len(col), bool)
        )
        cols.append(
            col
            if types <= {str, _Num}
            else [v if type(v) in (str, _Num) else _jtext(v) for v in col]
        )
    return Chunk(src, names, _text_table(names, cols), np.array(lines, np.int64), numeric, bad)


def _json_chunks(src: Source, objs: Iterator[tuple[int, object]], size: int) -> Iterator[Chunk]:
    rows: list[dict] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    for no, obj in objs:
        if isinstance(obj, BadRow):
            bad.append(obj)
        elif not _blank(obj):  # type: ignore[arg-type]
            rows.append(obj)  # type: ignore[arg-type]
            lines.append(no)
            if len(rows) == size:
                yield _json_chunk(src, rows, lines, bad)
                rows, lines, bad = [], [], []
    if rows or bad:
        yield _json_chunk(src, rows, lines, bad)


def _jsonl_objects(src: Source, opts: SourceOptions) -> Iterator[tuple[int, object]]:
    """(line, object) per non-blank line; a BadRow in place of a line that is not a JSON object."""
    enc = opts.encoding
    codecs.lookup(enc)  # an unknown name fails here, before a file is open
    with _open_bin(src.path) as f:
        for no, raw in enumerate(f, 1):
            try:
                text = raw.decode(enc)
            except UnicodeDecodeError as e:
                raise _decode_error(src, enc, no) from e
            if not text.strip():
                continue
            try:
                obj = _DECODER.decode(text)
            except json.JSONDecodeError as e:
                yield no, BadRow(no, f"not valid JSON: {e.msg} at column {e.colno}", {})
                continue
            if type(obj) is not dict:
                yield no, BadRow(no, f"not a JSON object but {_kind(obj)}", {})
                continue
            yield no, obj


def _kind(v: object) -> str:
    if isinstance(v, list):
        return "an array"
    if type(v) is _Num:
        return "a number"
    return "a string" if isinstance(v, str) else "null" if v is None else "a boolean"


def _read_jsonl(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    return _json_chunks(src, _jsonl_objects(src, opts), size)


def _read_json(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    return _json_chunks(src, _json_objects(src, opts), size)


def _json_objects(src: Source, opts: SourceOptions) -> Iterator[tuple[int, object]]:
    enc = opts.encoding
    try:
        with _open_text(src, enc) as f:
            yield from _JsonArray(f, src.name)
    except UnicodeDecodeError as e:
        raise _decode_error(src, enc) from e


class _JsonArray:
    """Streams (1-based index, object) from a top-level JSON array without loading the file."""

    def __init__(self, f: io.TextIOBase, name: str) -> None:
        self.f, self.name, self.buf, self.pos, self.eof = f, name, "", 0, False

    def _more(self) -> bool:
        block = "" if self.eof else self.f.read(max(1 << 16, len(self.buf) - self.pos))
        self.eof = not block
        self.buf, self.pos = self.buf[self.pos :] + block, 0
        return bool(block)

    def _peek(self) -> str:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _fail(self, what: str) -> InputError:
        return InputError(
            f"{self.name}: {what}.", "A .json source must be one array of objects: [{...}, {...}]."
        )

    def __iter__(self) -> Iterator[tuple[int, object]]:
        if self._peek() != "[":
            raise self._fail("not a JSON array")
        self.pos += 1
        if self._peek() == "]":
            return
        for idx in itertools.count(1):
            obj = self._value(idx)
            if type(obj) is not dict:
                raise self._fail(f"record {idx} is {_kind(obj)}, not an object")
            yield idx, obj
            c = self._peek()
            self.pos += 1
            if c == "]":
                if self._peek():
                    raise self._fail(
                        f"unexpected text after the array's closing ']' (after record {idx})"
                    )
                return
            if c != ",":
                raise self._fail(f"expected ',' or ']' after record {idx}")

    def _value(self, idx: int) -> object:
        self._peek()
        while True:
            try:
                obj, self.pos = _DECODER.raw_decode(self.buf, self.pos)
                return obj
            except json.JSONDecodeError as e:
                cut = e.pos >= len(self.buf) - 16 or e.msg.startswith("Unterminated string")
                if not (cut and self._more()):  # a real error, not the end of what was read so far
                    raise self._fail(f"record {idx} is not valid JSON: {e.msg}") from e


# ---------------------------------------------------------------- Parquet


class _parquet_file:
    """Context manager: a ParquetFile (a .parquet.gz is gunzipped to a temporary file first)."""

    def __init__(self, src: Source) -> None:
        self.src, self.tmp, self.pf = src, None, None

    def __enter__(self):
        import pyarrow.parquet as pq

        target = self.src.path
        if target.name.lower().endswith(".gz"):
            self.tmp = tempfile.TemporaryFile()
            with gzip.open(target, "rb") as f:
                shutil.copyfileobj(f, self.tmp, 1 << 20)
            self.tmp.seek(0)
            target = self.tmp
        try:
            self.pf = pq.ParquetFile(target)
        except pa.ArrowException as e:
            self.__exit__()
            raise InputError(f"{self.src.name}: not a readable Parquet file: {e}.") from e
        return self.pf

    def __exit__(self, *exc) -> None:
        for f in (self.pf, self.tmp):
            if f is not None:
                f.close()


def _read_parquet(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    try:
        yield from _parquet_chunks(src, size)
    except pa.ArrowException as e:
        raise InputError(f"{src.name}: cannot read: {e}.") from e


def _parquet_chunks(src: Source, size: int) -> Iterator[Chunk]:
    with _parquet_file(src) as pf:
        names = _check_names(pf.schema_arrow.names, src, None)
        seen = 0
        for batch in pf.iter_batches(batch_size=size):
            texts, masks = (
                zip(*(_pq_text(c) for c in batch.columns), strict=True)
                if batch.num_columns
                else ((), ())
            )
            lines = np.arange(seen + 1, seen + 1 + batch.num_rows, dtype=np.int64)
            seen += batch.num_rows
            table = pa.Table.from_arrays(list(texts), names=names)
            keep = np.zeros(batch.num_rows, bool)
            for t in texts:
                keep |= pc.binary_length(t).to_numpy(zero_copy_only=False) > 0
            if not keep.any():
                continue
            yield Chunk(
                src,
                list(names),
                table.filter(pa.array(keep)),
                lines[keep],
                {k: m[keep] for k, m in zip(names, masks, strict=True)},
                [],
            )


def _pq_text(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """A column as text ("" for null) and its mask of numeric cells."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    t = col.type
    if pa.types.is_floating(t):
        return _pq_float(col)
    numeric = pa.types.is_integer(t) or pa.types.is_decimal(t)
    if pa.types.is_timestamp(t):
        secs = pc.cast(
            pc.round_temporal(col, unit="second"), pa.timestamp("s", "UTC" if t.tz else None)
        )
        text = pc.strftime(secs, format="%Y-%m-%d %H:%M:%S")
        text = pc.binary_join_element_wise(text, "+00:00", "") if t.tz else text
    elif pa.types.is_time(t):
        text = pc.utf8_slice_codeunits(pc.cast(col, pa.string()), 0, 8)
    elif pa.types.is_nested(t):
        text = pa.array(
            [
                None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                for v in col.to_pylist()
            ],
            pa.string(),
        )
    else:
        text = pc.cast(col, pa.string())
    mask = pc.is_valid(col).to_numpy(zero_copy_only=False) if numeric else np.zeros(len(col), bool)
    return pc.fill_null(text, ""), mask


def _pq_float(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    vals = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    text = pc.cast(vals, pa.string())
    fix = np.flatnonzero(
        pc.fill_null(pc.match_substring(text, "e"), False).to_numpy(zero_copy_only=False)
    )
    if len(fix):
        arr, py = vals.to_numpy(zero_copy_only=False), text.to_pylist()
        for i in fix:
            py[i] = np.format_float_positional(arr[i], trim="-")
        text = pa.array(py, pa.string())
    mask = (
        pc.and_(pc.is_valid(vals), pc.is_finite(vals))
        .fill_null(False)
        .to_numpy(zero_copy_only=False)
    )
    return pc.fill_null(text, ""), mask

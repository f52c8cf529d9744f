"""Shared types and helpers of the readers: formats, opening files, header checks."""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.errors import InputError

FORMATS = ("csv", "tsv", "xlsx", "jsonl", "json", "parquet")
_EXT = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".xlsx": "xlsx",
    ".xls": "xlsx",  # an old .xls, or an HTML page saved as .xls: the workbook reader names which
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
MAX_LINE = 16 << 20  # SPEC 12: lines up to 16 MiB are read
UNDECODED = re.compile("[\ud800-\udfff]")  # what errors="surrogateescape" leaves for bytes that do not decode
_ENC_HINT = "Set source.encoding in the mapping to the file's encoding (for example cp1252 or latin-1)."


@dataclass(frozen=True)
class SourceOptions:
    format: str | None = None
    delimiter: str | None = None
    encoding: str = "utf-8"
    sheet: str | int | None = None
    header_row: int = 1  # 1-based line (CSV, TSV) or row (xlsx) of the header; above it is ignored
    skip_footer: int = 0  # the last N non-empty rows of each file are not data (a Total line)


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
    lines: npt.NDArray[np.int64]  # source line of each row
    numeric: dict[str, npt.NDArray[np.bool_]]  # per column: the cells the source typed as numbers
    bad: list[BadRow] = field(default_factory=list)
    date1904: bool = False  # a workbook's serial numbers count days from 1904-01-01 (else 1899-12-30)
    errors: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)  # per column: Excel error cells

    def select(self, keep: npt.NDArray[np.bool_], bad: list[BadRow]) -> Chunk:
        """The rows where keep is true, with these bad rows."""
        return Chunk(
            self.source,
            self.columns,
            self.table.filter(pa.array(keep)),
            self.lines[keep],
            {name: mask[keep] for name, mask in self.numeric.items()},
            bad,
            self.date1904,
            {name: mask[keep] for name, mask in self.errors.items()},
        )


class _io_errors:
    """Turn OS, gzip and decoding failures into InputError naming the file."""

    def __init__(self, src: Source) -> None:
        self.src = src

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if isinstance(exc, LookupError):
            raise InputError(
                f"{self.src.name}: unknown encoding: {exc}.",
                "Set source.encoding to a Python codec name such as utf-8 or cp1252.",
            ) from exc
        if isinstance(exc, UnicodeError):  # a codec that gives up on the stream (not a bad byte: those are rejects)
            raise InputError(
                f"{self.src.name}: cannot read as text: {exc}.",
                "Set source.encoding in the mapping to the file's encoding.",
            ) from exc
        if isinstance(exc, zlib.error):
            raise InputError(
                f"{self.src.name}: cannot read: the gzip data is corrupt ({exc}).",
                "Check that the file is complete and of the format its name says.",
            ) from exc
        if isinstance(exc, (OSError, EOFError)):
            why = getattr(exc, "strerror", None) or str(exc)
            raise InputError(
                f"{self.src.name}: cannot read: {why}.",
                "Check that the file is complete and of the format its name says.",
            ) from exc


def is_gzipped(path: Path) -> bool:
    """Whether the file is read through gzip: its name ends in .gz (any case)."""
    return path.name.lower().endswith(".gz")


def format_name(path: Path) -> str:
    """The file name that tells the format: lower case, a trailing .gz removed (`a.csv.gz` -> `a.csv`)."""
    return path.name.lower().removesuffix(".gz")


def _format_of(path: Path, opts: SourceOptions) -> str:
    if opts.format:
        if opts.format not in FORMATS:
            raise InputError(f"Unknown source.format {opts.format!r}.", f"Use one of: {', '.join(FORMATS)}.")
        return opts.format
    fmt = _EXT.get(os.path.splitext(format_name(path))[1])
    if fmt is None:
        raise InputError(
            f"{path}: cannot tell the format from the file name.",
            f"Set source.format in the mapping ({', '.join(FORMATS)}).",
        )
    return fmt


def _open_bin(path: Path) -> gzip.GzipFile | io.BufferedReader:
    """Binary stream of the file, gunzipped if its name ends in .gz, past a UTF-8 BOM."""
    stream = gzip.open(path, "rb") if is_gzipped(path) else open(path, "rb")
    try:
        if stream.peek(3)[:3] == _BOM:
            stream.read(3)
    except BaseException:
        stream.close()
        raise
    return stream


def text_encoding(path: Path, declared: str) -> str:
    """The encoding to read with: a byte-order mark (UTF-8, UTF-16 LE or BE) wins over `declared`."""
    with gzip.open(path, "rb") if is_gzipped(path) else open(path, "rb") as f:
        start = f.read(3)
    if start.startswith(_BOM):
        return "utf-8"
    if start[:2] in _UTF16_BOMS:
        return "utf-16"  # Python's utf-16 codec reads the mark, takes its byte order and drops it
    if codecs.lookup(declared).name in ("utf-16", "utf-32"):
        raise InputError(
            f"{path}: source.encoding is {declared} but the file does not start with a byte-order mark.",
            f"Set source.encoding to {codecs.lookup(declared).name}-le or {codecs.lookup(declared).name}-be.",
        )
    return declared


def _open_text(src: Source, encoding: str, errors: str = "strict") -> io.TextIOWrapper:
    codecs.lookup(encoding)  # an unknown name fails here, before a file is open
    return io.TextIOWrapper(_open_bin(src.path), encoding=encoding, newline="", errors=errors)


def bounded_lines(f: io.TextIOBase, name: str, first: int = 1) -> Iterator[str]:
    """The stream's lines (ends kept; CR, LF and CRLF end a line); one over 16 MiB is an InputError."""
    for no in itertools.count(first):
        line = f.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE and line[-1] not in "\r\n":
            raise _long_line(name, no)
        yield line


def _long_line(name: str, line: int) -> InputError:
    if line == 1:
        return InputError(
            f"{name}: the file has no line break in its first 16 MiB.",
            "Check that the file is a text export of the format its name says.",
        )
    return InputError(f"{name}: line {line} is longer than 16 MiB.", "Check that the file is complete and not binary.")


def undecoded_reason(text: str, encoding: str, where: str = "column") -> str | None:
    """Why a cell or line decoded with errors="surrogateescape" is not valid text, or None when it is."""
    hit = UNDECODED.search(text)
    if hit is None:
        return None
    code = ord(hit.group()) - 0xDC00
    byte = f"byte 0x{code:02X}" if 0x80 <= code <= 0xFF else "a lone surrogate"
    label = "UTF-8" if codecs.lookup(encoding).name == "utf-8" else encoding
    return f"not valid {label} ({byte} at {where}); set source.encoding"


def clean_text(text: str) -> str:
    """The text with undecodable bytes shown as U+FFFD, so that it can be written as UTF-8."""
    return UNDECODED.sub("\ufffd", text)


def _decode_error(src: Source, encoding: str, line: int | None = None) -> InputError:
    if line is None:  # find the first physical line that does not decode (reading at most 16 MiB a line)
        try:
            with _open_text(src, encoding, "surrogateescape") as f:
                for no, text in enumerate(bounded_lines(f, src.name), 1):
                    if UNDECODED.search(text):
                        line = no
                        break
        except (InputError, UnicodeError):
            pass
    where = f"line {line}" if line else "somewhere"
    return InputError(f"{src.name}: {where} is not valid {encoding} text.", _ENC_HINT)


def drop_footer(chunks: Iterable[Chunk], count: int) -> Iterator[Chunk]:
    """The chunks without the last `count` rows of the file, good or bad (SPEC 12 `skip_footer`).

    Holds back chunks until `count` later rows are known, so memory stays at about two chunks.
    """
    if count <= 0:
        yield from chunks
        return
    held: list[Chunk] = []
    for chunk in chunks:
        held.append(chunk)
        while len(held) > 1 and sum(_items(c) for c in held[1:]) >= count:
            yield held.pop(0)
    lines = sorted(itertools.chain.from_iterable([*c.lines.tolist(), *(b.line for b in c.bad)] for c in held))
    if len(lines) <= count:
        return
    cut = lines[-count]  # the first footer line
    for c in held:
        keep = c.lines < cut
        bad = [b for b in c.bad if b.line < cut]
        if keep.any() or bad:
            yield c.select(keep, bad)


def _items(chunk: Chunk) -> int:
    return len(chunk.lines) + len(chunk.bad)


def _check_names(raw: Sequence[str], src: Source, line: int | None) -> list[str]:
    """Trim header names; an empty or repeated one is an InputError naming its position."""
    where = f"{src.name}: line {line}" if line else src.name
    names = [str(n).strip() for n in raw]
    seen: dict[str, int] = {}
    for i, n in enumerate(names, 1):
        if not n:
            raise InputError(f"{where}: header column {i} has no name.", "Give every column a name.")
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


def _text_table(names: list[str], cols: Sequence[Sequence[str]]) -> pa.Table:
    return pa.Table.from_arrays([pa.array(c, pa.string()) for c in cols], names=names)


def float_text(value: float) -> str:
    """Shortest exact positional text of a float: 0.1, 1234.5, 5, 100000000000000000000 (no exponent)."""
    text = repr(float(value))
    if "e" in text:
        return np.format_float_positional(value, trim="-")
    return text.removesuffix(".0")


def float_column(col: pa.Array) -> tuple[pa.Array, npt.NDArray[np.bool_]]:
    """A float column as `float_text` of each cell ("" for null and NaN), and its mask of finite cells.

    Arrow's cast writes the same shortest text except with an exponent (`1e+20`);
    only those cells go through `float_text`.
    """
    vals = pc.if_else(pc.is_nan(col), pa.scalar(None, col.type), col)
    text = pc.cast(vals, pa.string())
    fix = np.flatnonzero(pc.fill_null(pc.match_substring(text, "e"), False).to_numpy(zero_copy_only=False))
    if len(fix):
        floats, texts = vals.to_numpy(zero_copy_only=False), text.to_pylist()
        for i in fix:
            texts[i] = float_text(floats[i])
        text = pa.array(texts, pa.string())
    mask = pc.and_(pc.is_valid(vals), pc.is_finite(vals)).fill_null(False).to_numpy(zero_copy_only=False)
    return pc.fill_null(text, ""), mask

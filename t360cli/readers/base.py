"""Shared types and helpers of the readers: formats, opening files, header checks."""

from __future__ import annotations

import codecs
import gzip
import io
import os
from collections.abc import Sequence
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
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
_BOM = codecs.BOM_UTF8
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
    if stream.peek(3)[:3] == _BOM:
        stream.read(3)
    return stream


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

"""Shared types and helpers of the readers: formats, opening files, header checks."""

from __future__ import annotations

import codecs
import gzip
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

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
            raise InputError(f"Unknown source.format {opts.format!r}.", f"Use one of: {', '.join(FORMATS)}.")
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


def _text_table(names: list[str], cols: Sequence) -> pa.Table:
    return pa.Table.from_arrays([pa.array(c, pa.string()) for c in cols], names=names)

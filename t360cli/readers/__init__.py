"""Streaming readers: csv tsv xlsx jsonl json parquet (each maybe gzipped) -> Chunks of text."""

from __future__ import annotations

import glob
import hashlib
import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from t360cli.errors import InputError
from t360cli.readers.base import (
    FORMATS,
    BadRow,
    Chunk,
    Source,
    SourceOptions,
    _check_names,
    _format_of,
    _io_errors,
    drop_footer,
    float_text,
    format_name,
    is_gzipped,
)
from t360cli.readers.csvsrc import _csv_head, _find_header_row, _read_csv
from t360cli.readers.jsonsrc import _json_objects, _jsonl_objects, _read_json, _read_jsonl
from t360cli.readers.parquet import _parquet_file, _read_parquet
from t360cli.readers.xlsx import _read_xlsx, _xl_head, _xl_rows, _xl_sheet

__all__ = [
    "FORMATS",
    "BadRow",
    "Chunk",
    "Source",
    "SourceOptions",
    "drop_footer",
    "file_sha256",
    "find_header_row",
    "float_text",
    "format_name",
    "is_gzipped",
    "read_chunks",
    "read_header",
    "resolve_inputs",
]

_HEADER_SCAN = 1_000  # json/jsonl: objects whose keys make up read_header's answer


def resolve_inputs(patterns: Sequence[str]) -> list[Path]:
    """Expand paths and globs (sorted); refuse missing files and directories; drop duplicates."""
    out: dict[str, Path] = {}
    for pat in patterns:
        plain = Path(pat).expanduser()
        if any(ch in pat for ch in "*?[") and not plain.exists():
            hits = [Path(h) for h in sorted(glob.glob(os.path.expanduser(pat), recursive=True))]
            hits = [h for h in hits if h.is_file()]
            if not hits:
                raise InputError(f"No file matches {pat!r}.", "Check the pattern and the directory.")
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


def read_chunks(paths: Sequence[Path], opts: SourceOptions, chunk_rows: int = 50_000) -> Iterator[Chunk]:
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
            chunks = reader(src, opts, max(1, chunk_rows))
            yield from chunks if src.format == "xlsx" else drop_footer(chunks, opts.skip_footer)


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
        items = _jsonl_objects(src, opts) if src.format == "jsonl" else _json_objects(src, opts)
        records = (obj for _, obj in items if isinstance(obj, dict))
        return list(dict.fromkeys(itertools.chain.from_iterable(itertools.islice(records, _HEADER_SCAN))))


def find_header_row(path: Path, opts: SourceOptions) -> int:
    """CSV/TSV: the 1-based line of the header below a title block (SPEC 12, `mapping init`): the first
    of the first 50 lines whose cells are mostly non-empty text and whose next lines have as many cells;
    the first non-blank line when none does. Other formats: 1."""
    src = Source(0, Path(path), str(path), _format_of(Path(path), opts))
    if src.format not in ("csv", "tsv"):
        return 1
    with _io_errors(src):
        return _find_header_row(src, opts)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes, streamed."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}.") from e

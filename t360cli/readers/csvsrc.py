"""CSV / TSV reader: pyarrow's streaming reader, the csv module when a row needs exact handling."""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from t360cli.errors import InputError
from t360cli.readers.base import (
    BadRow,
    Chunk,
    Source,
    SourceOptions,
    _check_names,
    _decode_error,
    _open_text,
    _ragged,
    _text_table,
    is_gzipped,
)

if TYPE_CHECKING:
    import _csv

Lines = npt.NDArray[np.int64]


@dataclass
class _Head:
    names: list[str]
    delimiter: str
    encoding: str
    skip: int  # records up to and including the header (blank lines before it count)


@dataclass
class _Position:
    """How far the fast reader got: records read (blank ones too) and the next record's line."""

    records: int = 0
    line: int = 1


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
    position = _Position()
    try:
        for table, lines in _csv_fast(src, head, position):
            yield from out.add(table, lines)
    except _SlowPath:
        for table, lines, bad in _csv_slow(src, head, max(head.skip, position.records), size):
            yield from out.add(table, lines, bad)
    yield from out.flush()


def _csv_fast(src: Source, head: _Head, position: _Position) -> Iterator[tuple[pa.Table, Lines]]:
    """pyarrow's streaming reader; raises _SlowPath on a ragged row or a decoding failure."""
    keys = [f"c{i}" for i in range(len(head.names))]
    invalid: list[int] = []

    def on_invalid(row: object) -> str:
        invalid.append(1)
        return "skip"

    stream = pa.input_stream(str(src.path), compression="gzip" if is_gzipped(src.path) else None)
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
            yield from _fast_batch(batch, head, position)
    except (pa.ArrowException, UnicodeError, ValueError, OSError, EOFError) as e:
        raise _SlowPath from e
    finally:
        stream.close()


def _fast_batch(batch: pa.RecordBatch, head: _Head, position: _Position) -> Iterator[tuple[pa.Table, Lines]]:
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
            breaks += pc.count_substring(col, "\r").to_numpy(zero_copy_only=False) - pc.count_substring(
                col, "\r\n"
            ).to_numpy(zero_copy_only=False)
    before = np.concatenate(([0], np.cumsum(breaks)[:-1]))
    lines = position.line + np.arange(n, dtype=np.int64) + before
    keep = length > 0
    keep[: max(0, head.skip - position.records)] = False
    position.records += n
    position.line = int(lines[-1] + 1 + breaks[-1])
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
    data: bytes = values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()
    return data


def _csv_slow(src: Source, head: _Head, skip: int, size: int) -> Iterator[tuple[pa.Table, Lines, list[BadRow]]]:
    """Exact reading with the csv module from the start of the file, past `skip` records."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    names, n = head.names, len(head.names)
    cols: list[list[str]] = [[] for _ in range(n)]
    lines: list[int] = []
    bad: list[BadRow] = []
    with _open_text(src, head.encoding) as f:
        reader = csv.reader(f, delimiter=head.delimiter)
        prev = 0
        for k, rec in enumerate(_guarded(reader, src, head.encoding)):
            start, prev = prev + 1, reader.line_num
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


def _guarded(reader: _csv.Reader, src: Source, encoding: str) -> Iterator[list[str]]:
    """The reader's records; a decoding or quoting failure becomes an InputError naming the line."""
    it = iter(reader)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError as e:
            raise _decode_error(src, encoding) from e
        except csv.Error as e:
            raise InputError(
                f"{src.name}: line {reader.line_num}: cannot split into cells: {e}.",
                "Check the quoting around that line.",
            ) from e
        yield rec


class _Emitter:
    """Re-slices pieces of rows into chunks of exactly `size` rows (the last one shorter)."""

    def __init__(self, src: Source, names: list[str], size: int) -> None:
        self.src, self.names, self.size = src, names, size
        self.parts: list[pa.Table] = []
        self.lines: list[Lines] = []
        self.bad: list[BadRow] = []
        self.n = 0

    def add(self, table: pa.Table, lines: Lines, bad: Sequence[BadRow] = ()) -> Iterator[Chunk]:
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

    def _take(self, count: int) -> Chunk:
        """A chunk of the first `count` rows held, with the bad rows up to its last line."""
        table = pa.concat_tables(self.parts) if self.parts else _text_table(self.names, [[]] * len(self.names))
        lines = np.concatenate(self.lines) if self.lines else np.zeros(0, np.int64)
        rest = table.slice(count)
        self.parts, self.lines, self.n = ([rest], [lines[count:]], self.n - count) if rest.num_rows else ([], [], 0)
        last = lines[count - 1] if count and self.n else np.iinfo(np.int64).max  # later bad rows wait
        bad = [b for b in self.bad if b.line <= last]
        self.bad = [b for b in self.bad if b.line > last]
        return Chunk(self.src, list(self.names), table.slice(0, count), lines[:count], {}, bad)

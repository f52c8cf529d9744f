"""CSV / TSV reader: pyarrow's streaming reader, the csv module when a row needs exact handling."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
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
    UNDECODED,
    BadRow,
    Chunk,
    Source,
    SourceOptions,
    _check_names,
    _open_text,
    _ragged,
    _text_table,
    bounded_lines,
    clean_text,
    is_gzipped,
    text_encoding,
    undecoded_reason,
)

if TYPE_CHECKING:
    import _csv

Lines = npt.NDArray[np.int64]


@dataclass
class _Head:
    names: list[str]
    delimiter: str
    encoding: str
    skip: int  # physical lines up to and including the header (title and blank lines above it count)
    fed_back: bool = False  # a rejects file read back in: its spreadsheet-safe cells lose their leading '


@dataclass
class _Position:
    """How far the fast reader got: records read after the header (blank ones too) and the next record's line."""

    records: int
    line: int


_DELIMITERS = ",;\t|"
# SPEC 11, spreadsheet-safe rejects: a cell that begins (after any leading ') with one of _RISKY and is
# not a plain number is written with one more leading '; a rejects file read back loses that '.
REJECTS_HEAD = ["source_file", "source_line", "reason"]
_RISKY = "=+-@\t\r"
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9.,]+")  # linear: no nested or adjacent stars
_QUOTED_RISKY = r"^'+[=+\-@\t\r]"  # the vectorised tests (RE2) of _unquoted
_QUOTED_NUMBER = r"^'+[+-]?[0-9.,]+$"
_HEADER_MAX = 1 << 20  # characters a quoted header may span


class _SlowPath(Exception):
    """The fast reader met a row it cannot place exactly: re-read with the csv module."""


def _sniff(line: str) -> str:
    counts = {d: line.count(d) for d in _DELIMITERS}
    return max(counts, key=counts.__getitem__)  # first of the maxima: ',' wins a tie


def _shown(delim: str) -> str:
    return "\\t" if delim == "\t" else delim


def needs_quote(text: str) -> bool:
    """Whether the rejects CSV writes `text` with a leading ' so that a spreadsheet never runs it."""
    bare = text.lstrip("'")
    return bare[:1] != "" and bare[0] in _RISKY and not _PLAIN_NUMBER.fullmatch(bare)


def spreadsheet_safe(text: str) -> str:
    return "'" + text if needs_quote(text) else text


def _unquoted(text: str) -> str:
    """The inverse of spreadsheet_safe for one cell."""
    return text[1:] if text[:1] == "'" and needs_quote(text[1:]) else text


def _unquoted_column(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """_unquoted over a column, vectorised; the column itself when no cell starts with '."""
    marked = pc.match_substring_regex(col, _QUOTED_RISKY)
    if not pc.any(marked).as_py():
        return col
    quoted = pc.and_(marked, pc.invert(pc.match_substring_regex(col, _QUOTED_NUMBER)))
    return pc.if_else(quoted, pc.utf8_slice_codeunits(col, 1), col)


def _unquoted_table(table: pa.Table) -> pa.Table:
    return pa.Table.from_arrays([_unquoted_column(col) for col in table.columns], names=table.column_names)


def _slip(names: list[str], delim: str) -> str | None:
    """The other delimiter a one-column header holds (`Date;Amount` read with ','), or None."""
    if len(names) != 1:
        return None
    counts = {d: names[0].count(d) for d in _DELIMITERS if d != delim}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else None


def _header_lines(src: Source, f: io.TextIOBase, header_row: int) -> tuple[int, str, Iterator[str]]:
    """(physical line of the header, its text, the lines after it): at or below header_row, first non-blank."""
    lines = bounded_lines(f, src.name)
    no = 0
    for no, line in enumerate(lines, 1):
        if no >= header_row and line.strip():
            return no, line, lines
    if header_row > 1:
        raise InputError(
            f"{src.name}: no header at or below line {header_row}: the file has {no} lines.",
            "Check source.header_row in the mapping.",
        )
    raise InputError(f"{src.name}: the file is empty.", "Expected a header line.")


def _csv_head(src: Source, opts: SourceOptions) -> _Head:
    enc = text_encoding(src.path, opts.encoding)
    with _open_text(src, enc, "surrogateescape") as f:
        line_no, line, rest = _header_lines(src, f, opts.header_row)
        bad = undecoded_reason(line, enc, "line " + str(line_no))
        if bad:
            raise InputError(f"{src.name}: the header is {bad}.", "Save the file as UTF-8 or name its encoding.")
        delim = opts.delimiter or ("\t" if src.format == "tsv" else _sniff(line))
        rd = csv.reader(_capped(itertools.chain([line], rest), src, line_no), delimiter=delim)
        try:
            names = _check_names(next(rd), src, line_no)
        except csv.Error as e:
            raise InputError(f"{src.name}: line {line_no}: cannot split the header: {e}.") from e
    other = _slip(names, delim)
    if other:
        raise InputError(
            f"{src.name}: line {line_no}: the header contains '{_shown(other)}': "
            f'set source.delimiter: "{_shown(other)}".',
            f"It is read with '{_shown(delim)}' as the delimiter and so has a single column.",
        )
    head = _Head(names, delim, enc, line_no + rd.line_num - 1, fed_back=names[:3] == REJECTS_HEAD)
    if head.fed_back:
        head.names = [_unquoted(name) for name in names]
    return head


def _capped(lines: Iterator[str], src: Source, line_no: int) -> Iterator[str]:
    """The lines of the header record, refusing one that spans more than 1 MiB (an unclosed quote)."""
    size = 0
    for line in lines:
        size += len(line)
        if size > _HEADER_MAX:
            raise InputError(
                f"{src.name}: line {line_no}: the header does not end within 1 MiB.",
                "Check for an unclosed quote in the header.",
            )
        yield line


def _find_header_row(src: Source, opts: SourceOptions, scan: int = 50) -> int:
    """The 1-based line of the header below a title block: the first line whose cells are mostly
    non-empty text and that the next non-blank lines match in width; 1 when none does."""
    enc = text_encoding(src.path, opts.encoding)
    with _open_text(src, enc, "surrogateescape") as f:
        found = [(no, t) for no, t in zip(range(1, scan + 1), bounded_lines(f, src.name), strict=False)]
    texts = [(no, t) for no, t in found if t.strip()]
    if not texts:
        return 1
    delim = opts.delimiter or ("\t" if src.format == "tsv" else _sniff(max((t for _, t in texts), key=len)))
    rows = [(no, next(csv.reader([t], delimiter=delim), [])) for no, t in texts]
    for i, (no, cells) in enumerate(rows):
        filled = [c.strip() for c in cells if c.strip()]
        wordy = [c for c in filled if not _NUMBER.fullmatch(c)]
        if len(cells) < 2 or len(filled) * 2 <= len(cells) or len(wordy) * 2 <= len(cells):
            continue
        after = [len(c) for _, c in rows[i + 1 : i + 4]]
        if after and all(w == len(cells) for w in after):
            return no
    return texts[0][0]


_NUMBER = re.compile(r"[-+]?[0-9.,\s]+%?")


def _read_csv(src: Source, opts: SourceOptions, size: int) -> Iterator[Chunk]:
    head = _csv_head(src, opts)
    out = _Emitter(src, head.names, size, head.fed_back)
    position = _Position(0, head.skip + 1)
    try:
        for table, lines in _csv_fast(src, head, position):
            yield from out.add(table, lines)
    except _SlowPath:
        for table, lines, bad in _csv_slow(src, head, position.records, size):
            yield from out.add(table, lines, bad)
    yield from out.flush()


def _csv_fast(src: Source, head: _Head, position: _Position) -> Iterator[tuple[pa.Table, Lines]]:
    """pyarrow's streaming reader; raises _SlowPath on a ragged row or a decoding failure."""
    keys = [f"c{i}" for i in range(len(head.names))]
    # no invalid_row_handler: pyarrow decodes the row for it and a bad byte there is an "Exception ignored"
    # on stderr; a ragged row raises ArrowInvalid instead, which sends us to the exact path all the same
    stream = pa.input_stream(str(src.path), compression="gzip" if is_gzipped(src.path) else None)
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                column_names=keys, block_size=1 << 20, encoding=_arrow_encoding(head.encoding), skip_rows=head.skip
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=head.delimiter,
                newlines_in_values=True,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(keys, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
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
    """Exact reading with the csv module, past the header and `skip` more records.

    Bytes that do not decode make their row a BadRow (`not valid UTF-8 (byte 0xE9 at column 3)`).
    """
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    names, n = head.names, len(head.names)
    cols: list[list[str]] = [[] for _ in range(n)]
    lines: list[int] = []
    bad: list[BadRow] = []
    with _open_text(src, head.encoding, "surrogateescape") as f:
        physical = bounded_lines(f, src.name)
        for _ in itertools.islice(physical, head.skip):
            pass
        reader = csv.reader(physical, delimiter=head.delimiter)
        prev = head.skip
        for k, rec in enumerate(_guarded(reader, src, head.skip)):
            start, prev = prev + 1, head.skip + reader.line_num
            if k < skip or not any(rec):
                continue
            if len(rec) != n:
                if "".join(rec).strip():  # a stray line of spaces is not a bad row
                    bad.append(_ragged([clean_text(c) for c in rec], names, start))
                continue
            why = _undecoded(rec, head.encoding)
            if why:
                bad.append(BadRow(start, why, {name: clean_text(c) for name, c in zip(names, rec, strict=True)}))
                continue
            for col, cell in zip(cols, rec, strict=True):
                col.append(cell)
            lines.append(start)
            if len(lines) >= size:
                yield _text_table(names, cols), np.array(lines, np.int64), bad
                cols, lines, bad = [[] for _ in range(n)], [], []
    yield _text_table(names, cols), np.array(lines, np.int64), bad


def _undecoded(rec: list[str], encoding: str) -> str | None:
    """Why a record holds bytes that do not decode, naming the first such column; None when it decodes."""
    if not UNDECODED.search("".join(rec)):
        return None
    for i, cell in enumerate(rec, 1):
        why = undecoded_reason(cell, encoding, f"column {i}")
        if why:
            return why
    return None  # pragma: no cover


def _guarded(reader: _csv.Reader, src: Source, offset: int) -> Iterator[list[str]]:
    """The reader's records; a quoting failure becomes an InputError naming the line."""
    it = iter(reader)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(
                f"{src.name}: line {offset + reader.line_num}: cannot split into cells: {e}.",
                "Check the quoting around that line.",
            ) from e
        yield rec


class _Emitter:
    """Re-slices pieces of rows into chunks of exactly `size` rows (the last one shorter)."""

    def __init__(self, src: Source, names: list[str], size: int, fed_back: bool = False) -> None:
        self.src, self.names, self.size, self.fed_back = src, names, size, fed_back
        self.parts: list[pa.Table] = []
        self.lines: list[Lines] = []
        self.bad: list[BadRow] = []
        self.n = 0

    def add(self, table: pa.Table, lines: Lines, bad: Sequence[BadRow] = ()) -> Iterator[Chunk]:
        """Both the fast and the exact path pass here: a rejects file's quoted cells lose their ' here."""
        if self.fed_back:
            table = _unquoted_table(table)
            bad = [BadRow(b.line, b.reason, {k: _unquoted(v) for k, v in b.cells.items()}) for b in bad]
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

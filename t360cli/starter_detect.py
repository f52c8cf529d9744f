"""`mapping init`, how to read an export (SPEC 12): its format, encoding, delimiter, sheet,
header row below a title block, and a Total line at the bottom.

`detect` returns the reader's options for the sample and the `source:` keys the starter
mapping must write so that `t360 validate` reads the file the same way.
"""

from __future__ import annotations

import codecs
import collections
import csv
import gzip
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from t360cli import contract, readers
from t360cli.errors import InputError, UsageError
from t360cli.readers.base import _format_of
from t360cli.readers.xlsx import open_sheet

SNIFF_BYTES = 1 << 20
SCAN_LINES = 50  # lines (rows) looked at for a delimiter or a header
TAIL_BYTES = 1 << 16  # bytes read from the end of a text file for its last line
MAX_WORKBOOK = 256 << 20  # bytes of a gzipped or renamed workbook read to look at its sheets
DELIMITERS = "\t;,|"
TAB_NAMES = {"\\t": "\t", "tab": "\t", "TAB": "\t"}
# The first cell of a footer line: Total, Totals, Grand total, Sum, Summe, Totale, Gesamt...
TOTAL = re.compile(r"^(grand\s+)?(totals?|sum|summe|totale|gesamt|gesamtsumme|somme|suma|totaal)\b", re.I)
_NUMBER = re.compile(r"[-+]?[0-9.,\s]+%?")

Value = str | int
NOTES = {
    "format": "this file's format, which its name does not tell",
    "delimiter": "the character between cells",
    "encoding": "not UTF-8: read as Windows-1252 (check accented names)",
    "sheet": "the sheet that holds the data",
    "header_row": "the header's line (Excel: row number); what is above it is a title",
    "skip_footer": "the last non-empty line (row) is a Total, not data",
    "decimal": "numbers like 1.234,50",
}


# Names contract.SYNONYMS does not list yet, tried after its own (MetaTrader's Deal and Order...).
MORE_SYNONYMS = {
    "activities": {
        "eventid": [
            "deal",
            "dealno",
            "dealnumber",
            "ticketno",
            "ticketnumber",
            "ticketid",
            "order",
            "orderno",
            "ordernumber",
            "transaction",
            "transactionno",
            "transactionnumber",
            "transactionref",
            "txn",
            "txnno",
            "txnref",
            "paymentid",
            "depositid",
            "withdrawalid",
            "operationid",
            "requestid",
        ],
    },
}


def fold(name: str) -> str:
    return re.sub(r"[\s_\-.#/()]+", "", name).lower()


def match_columns(kind: str, header: list[str]) -> dict[str, str]:
    """target -> column, best synonym first, each column used once."""
    folded = {fold(c): c for c in reversed(header)}
    used: set[str] = set()
    out: dict[str, str] = {}
    for target, synonyms in contract.SYNONYMS[kind].items():
        for syn in [fold(target), *synonyms, *MORE_SYNONYMS.get(kind, {}).get(target, [])]:
            col = folded.get(syn)
            if col and col not in used:
                out[target] = col
                used.add(col)
                break
    return out


@dataclass(frozen=True)
class Given:
    """What the command line said (None: find it out from the file)."""

    format: str | None = None
    delimiter: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    header_row: int | None = None


@dataclass
class Detected:
    """How to read the sample, and the `source:` keys (in order) the mapping needs for it."""

    opts: readers.SourceOptions
    source: dict[str, Value] = field(default_factory=dict)


def detect(path: Path, kind: str, given: Given) -> Detected:
    """The reader's options for `path` and the `source:` keys, from `given` and the file's content."""
    _check(given)
    fmt, sniffed = _format(path, given)
    found = Detected(readers.SourceOptions(format=fmt))
    if given.format or sniffed:
        found.source["format"] = fmt
    if fmt in ("csv", "tsv"):
        _text_source(path, given, found, sniffed)
    elif fmt == "xlsx":
        _workbook_source(path, kind, given, found)
    return found


def _check(given: Given) -> None:
    if given.format is not None and given.format not in readers.FORMATS:
        raise UsageError(f"--format must be one of {', '.join(readers.FORMATS)}, not '{given.format}'.")
    if given.delimiter is not None and len(TAB_NAMES.get(given.delimiter, given.delimiter)) != 1:
        raise UsageError(f"--delimiter must be one character, not '{given.delimiter}'.", 'Write "\\t" for a tab.')
    if given.encoding is not None:
        try:
            codecs.lookup(given.encoding)
        except LookupError:
            raise UsageError(
                f"--encoding: unknown encoding '{given.encoding}'.", "Use utf-8, cp1252, latin-1..."
            ) from None
    if given.header_row is not None and given.header_row < 1:
        raise UsageError(f"--header-row must be 1 or more, not {given.header_row}.")


def _format(path: Path, given: Given) -> tuple[str, bool]:
    """(format, whether it was sniffed from the content because the name does not tell it)."""
    if given.format:
        return given.format, False
    try:
        return _format_of(path, readers.SourceOptions()), False
    except InputError:  # `.txt`, `.dat`, no extension
        return ("xlsx" if _head(path, 4) == b"PK\x03\x04" else "csv"), True


def _head(path: Path, size: int) -> bytes:
    try:
        with gzip.open(path, "rb") if readers.is_gzipped(path) else open(path, "rb") as f:
            return f.read(size)
    except (OSError, EOFError):  # the reader reports a missing or damaged file
        return b""


# --- CSV, TSV and .txt -------------------------------------------------------------------


def _text_source(path: Path, given: Given, found: Detected, sniffed: bool) -> None:
    encoding = given.encoding or _encoding(path)
    if given.encoding or encoding != "utf-8":
        found.source["encoding"] = encoding
    delimiter = TAB_NAMES.get(given.delimiter or "", given.delimiter)
    if delimiter is None and found.opts.format == "csv":
        delimiter = sniff_delimiter(_lines(path, encoding))
        delimiter = None if delimiter == "," and not sniffed else delimiter  # "," goes without saying
    if delimiter == "\t" and found.opts.format == "csv" and sniffed:
        found.source["format"] = "tsv"
        found.opts = replace(found.opts, format="tsv")
    elif delimiter is not None:
        found.source["delimiter"] = delimiter
    found.opts = replace(found.opts, encoding=encoding, delimiter=delimiter)
    header_row = given.header_row or readers.find_header_row(path, found.opts)
    if header_row > 1:
        found.source["header_row"] = header_row
    found.opts = replace(found.opts, header_row=header_row)
    last = [c.strip() for c in _last_cells(path, found.opts)]
    if _is_total(last) and last != [c.strip() for c in readers.read_header(path, found.opts)]:
        found.source["skip_footer"] = 1
        found.opts = replace(found.opts, skip_footer=1)


def _encoding(path: Path) -> str:
    """utf-8 when the first MiB decodes as UTF-8 (or a byte-order mark says so), else cp1252."""
    head = _head(path, SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-8"  # the reader honours the mark whatever the encoding says
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _lines(path: Path, encoding: str) -> list[str]:
    """The first non-blank lines of a text file (a UTF-16 mark honoured)."""
    head = _head(path, SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)
    return [line for line in text.lstrip("\ufeff").splitlines() if line.strip()][:SCAN_LINES]


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits most lines into the same number of cells (title lines differ)."""

    def score(d: str) -> tuple[int, int]:
        counts = [n for n in (line.count(d) for line in lines) if n]
        if not counts:
            return 0, 0
        width, seen = collections.Counter(counts).most_common(1)[0]
        return seen, width

    best = max(DELIMITERS, key=score)
    return best if score(best)[0] else ","


def _last_cells(path: Path, opts: readers.SourceOptions) -> list[str]:
    """The cells of the last non-blank line of a text file."""
    last = ""
    for line in _tail_lines(path, opts.encoding):
        if line.strip():
            last = line
    if not last:
        return []
    delimiter = opts.delimiter or ("\t" if opts.format == "tsv" else sniff_delimiter([last]))
    return next(csv.reader([last], delimiter=delimiter), [])


def _tail_lines(path: Path, encoding: str) -> Iterable[str]:
    """The file's last lines: its last 64 KiB, or every line of a gzipped or UTF-16 file."""
    if readers.is_gzipped(path) or _head(path, 2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return _all_lines(path, encoding)
    try:
        with open(path, "rb") as f:
            start = max(0, f.seek(0, io.SEEK_END) - TAIL_BYTES)
            f.seek(start)
            lines = f.read().decode(encoding, errors="replace").splitlines()
    except OSError:
        return []
    return lines[1:] if start else lines  # the first may be cut


def _all_lines(path: Path, encoding: str) -> Iterator[str]:
    if _head(path, 2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        encoding = "utf-16"
    try:
        with gzip.open(path, "rb") if readers.is_gzipped(path) else open(path, "rb") as raw:
            yield from io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
    except (OSError, EOFError):
        return


def _is_total(cells: Iterable[Any]) -> bool:
    first = next((str(c).strip() for c in cells if str(c).strip()), "")
    return bool(TOTAL.match(first))


# --- workbooks ---------------------------------------------------------------------------


@dataclass
class _SheetHead:
    name: str
    header_row: int | None  # the Excel row of a header with data below, if any
    first_row: int  # the first non-empty row
    matches: int  # header cells that name a guide field
    total: bool  # the last non-empty row is a Total


def _workbook_source(path: Path, kind: str, given: Given, found: Detected) -> None:
    heads = _sheet_heads(path, kind)
    sheet: str | int | None = int(given.sheet) if given.sheet and given.sheet.isdigit() else given.sheet
    if sheet is None and heads:
        chosen = _choose(heads)
        sheet = None if chosen is heads[0] else chosen.name
    if sheet is not None:
        found.source["sheet"] = sheet
    head = _named(heads, sheet)
    header_row = given.header_row or (head.header_row if head and head.header_row else 1)
    if given.header_row or (head and header_row > head.first_row):
        found.source["header_row"] = header_row
    footer = 1 if head and head.total else 0
    if footer:
        found.source["skip_footer"] = footer
    found.opts = replace(found.opts, sheet=sheet, header_row=header_row, skip_footer=footer)


def _choose(heads: list[_SheetHead]) -> _SheetHead:
    """The first sheet with a header that names a guide field; else the first with a header; else the first."""
    with_header = [h for h in heads if h.header_row is not None]
    return next((h for h in with_header if h.matches), with_header[0] if with_header else heads[0])


def _named(heads: list[_SheetHead], sheet: str | int | None) -> _SheetHead | None:
    if sheet is None:
        return heads[0] if heads else None
    if isinstance(sheet, int):
        return heads[sheet] if 0 <= sheet < len(heads) else None
    return next((h for h in heads if h.name == sheet), None)


def _sheet_heads(path: Path, kind: str) -> list[_SheetHead]:
    """Each sheet's header row, first row, field matches and footer; [] when the workbook
    cannot be opened here (the reader then says why)."""
    from python_calamine import CalamineWorkbook

    try:
        if readers.format_name(path).endswith(".xlsx") and not readers.is_gzipped(path):
            wb = CalamineWorkbook.from_path(str(path))
        else:  # gzipped, or named .xls or nothing: calamine tells the format by the name, so give it bytes
            with gzip.open(path, "rb") if readers.is_gzipped(path) else open(path, "rb") as f:
                wb = CalamineWorkbook.from_object(io.BytesIO(f.read(MAX_WORKBOOK + 1)))
        names = list(wb.sheet_names)
    except BaseException as e:  # calamine raises its own types, and PanicException (a BaseException)
        if isinstance(e, (KeyboardInterrupt, SystemExit, GeneratorExit)):
            raise
        return []
    # each sheet opened the way the reader opens it: its real extent checked first, so a
    # stray cell far away is a sentence (InputError), never a sheet allocated whole
    return [_head_of(name, open_sheet(path, name), kind) for name in names]


def _head_of(name: str, sheet: Any, kind: str) -> _SheetHead:
    top, (last_no, last) = _scan(sheet)
    first = top[0][0] if top else 1
    row = header_in(top)
    names = [str(c).strip() for c in dict(top).get(row, [])] if row else []
    matches = len(match_columns(kind, [n for n in names if n]))
    return _SheetHead(name, row, first, matches, _is_total(last) and last_no > (row or first))


def _scan(sheet: Any) -> tuple[list[tuple[int, list[Any]]], tuple[int, list[Any]]]:
    """(the first non-empty rows with their Excel row numbers, the last non-empty one)."""
    start_row = (sheet.start or (0, 0))[0]
    top: list[tuple[int, list[Any]]] = []
    last: tuple[int, list[Any]] = (0, [])
    no = 0
    for i, cells in enumerate(sheet.iter_rows()):
        if i == 0:  # iter_rows starts at row 1, or at the used range's first row (as the reader counts)
            no = 1 if start_row == 0 or all(c == "" for c in cells) else start_row + 1
        else:
            no += 1
        if all(c == "" or c is None for c in cells):
            continue
        last = (no, cells)
        if len(top) < SCAN_LINES:
            top.append((no, cells))
    return top, last


def header_in(rows: list[tuple[int, list[Any]]]) -> int | None:
    """The Excel row of the first row that looks like a header: three or more distinct text
    cells, mostly filled, most with a letter, none a number; with a data row below it."""
    for i, (no, cells) in enumerate(rows):
        filled = [c for c in cells if c not in ("", None)]
        texts = [c.strip() for c in filled if isinstance(c, str) and c.strip()]
        width = max((k + 1 for k, c in enumerate(cells) if c not in ("", None)), default=0)
        if len(texts) < 3 or len(texts) != len(filled) or len(set(texts)) != len(texts) or len(filled) * 2 <= width:
            continue
        wordy = sum(any(ch.isalpha() for ch in t) for t in texts)
        if any(_NUMBER.fullmatch(t) for t in texts) or wordy * 2 <= len(texts):
            continue
        below = rows[i + 1 : i + 4]
        if any(sum(c not in ("", None) for c in cells_below) * 2 >= len(filled) for _, cells_below in below):
            return no
    return None

"""What a workbook really holds, read from its zip before calamine loads a sheet (SPEC 11, 12).

A sheet's declared dimension is not trusted: calamine allocates the rectangle from the first to
the last cell that holds a value, so the sheet's XML is streamed once (bounded) to find that
rectangle and refuse it beyond a memory budget. The same pass collects what calamine drops or
cannot tell: error cells (`#DIV/0!`), cells valued 60 (Excel's fictitious 1900-02-29 when
date-formatted), and the workbook's date system.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from xml.etree import ElementTree as ET

from t360cli.errors import InputError, T360Error
from t360cli.readers.base import Source

MAX_GUNZIPPED = 256 << 20  # an .xlsx.gz expands to at most this
MAX_PART = 160 << 20  # shared strings, styles, workbook, relationships: calamine holds them in memory
MAX_SHEET_XML = 1 << 30  # one sheet's XML (a 50 MB workbook expands to ~500 MB at most)
MAX_ZIP_ENTRIES = 10_000
MAX_ERRORS = 200_000  # error cells remembered per sheet
MAX_SIXTIES = 200_000
LOAD_BUDGET = 320 << 20  # bytes one sheet may take: 64 per cell of its range (calamine, then rows), 40 per value
_BLOCK = 1 << 20
_MAX_CARRY = 32 << 20
_RECOUNT = 1_000_000  # a range too large by the fast count is counted exactly up to this many cells (~5 s)
_MAX_ROW, _MAX_COL = 1_048_576, 16_384
_REDO = "Copy or export the file again, or open it in Excel and save it again as .xlsx."

# the usual layout: `r` first, no namespace prefix; anything else goes the exact (slower) way
_CELL = re.compile(rb'<c(?: r="([A-Z]{1,3})([1-9][0-9]{0,6})")?[\s/>]')  # no `r` first: empty groups
_FORMULA = rb"(?:<f\b[^>]*?(?:/>|>[^<]*</f>))?"
_ERROR_CELL = re.compile(
    rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"[^>]*?\bt="e"[^>/]*>' + _FORMULA + rb"<v>([^<]{1,40})</v>"
)
_SIXTY_CELL = re.compile(rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"[^>/]*>' + _FORMULA + rb"<v>60(?:\.[0-9]*)?</v>")
_SIXTY = re.compile(rb"<v>60(?:\.[0-9]*)?</v>")
# the exact way: every row, cell and value tag, any prefix, any attribute order
_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|c|v|is)\b([^>]*?)(/?)>")
_ATTR_R = re.compile(rb'\br="([^"]*)"')
_ATTR_T = re.compile(rb'\bt="([^"]*)"')
_REF = re.compile(r"([A-Za-z]{1,3})([1-9][0-9]{0,6})")


@dataclass
class SheetScan:
    """One sheet's real extent (1-based rows and columns of the cells with a value) and its odd cells."""

    name: str
    date1904: bool
    first_row: int = 0  # 0: no cell holds a value
    last_row: int = 0
    first_col: int = 0
    last_col: int = 0
    cells: int = 0
    errors: dict[int, dict[int, str]] = field(default_factory=dict)  # row -> {column: "#DIV/0!"}
    sixties: set[tuple[int, int]] = field(default_factory=set)  # (row, column) valued 60 to 61

    def add(self, rows: list[int], cols: list[int], count: int) -> None:
        if not count:
            return
        lo_r, hi_r, lo_c, hi_c = min(rows), max(rows), min(cols), max(cols)
        if not self.cells:
            self.first_row, self.last_row, self.first_col, self.last_col = lo_r, hi_r, lo_c, hi_c
        else:
            self.first_row, self.last_row = min(self.first_row, lo_r), max(self.last_row, hi_r)
            self.first_col, self.last_col = min(self.first_col, lo_c), max(self.last_col, hi_c)
        self.cells += count

    def error(self, row: int, col: int, text: str) -> None:
        if sum(map(len, self.errors.values())) < MAX_ERRORS or row in self.errors:
            self.errors.setdefault(row, {})[col] = text


def column_number(letters: str | bytes) -> int:
    n = 0
    for ch in letters.upper() if isinstance(letters, str) else letters.decode().upper():
        n = n * 26 + ord(ch) - 64
    return n


def column_letters(n: int) -> str:
    out = ""
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


@contextmanager
def damaged(src: Source, what: str) -> Iterator[None]:
    """Any failure inside (zip, deflate, CRC, XML) becomes one sentence naming the file."""
    try:
        yield
    except T360Error:
        raise
    except Exception as e:
        why = str(e).strip().rstrip(".").splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise InputError(f"{src.name}: {what} is damaged ({why}).", _REDO) from e


def scan_sheet(src: Source, raw: io.BytesIO | str, want: str | int | None) -> SheetScan:
    """The chosen sheet's real extent, error cells and date system; an InputError if it is too large."""
    with damaged(src, "the workbook"):
        if isinstance(raw, io.BytesIO):
            raw.seek(0)
        with zipfile.ZipFile(raw) as zf:
            if len(zf.infolist()) > MAX_ZIP_ENTRIES:
                raise InputError(f"{src.name}: not an Excel workbook (a zip of {len(zf.infolist()):,} files).")
            names, sheets, held, date1904 = _workbook(src, zf)
            name = pick_sheet(src, names, want)
            for part in sorted(held & set(zf.NameToInfo)):
                _bounded_size(src, zf, part, MAX_PART)
            scan = SheetScan(name, date1904)
            sheet_xml = sheets.get(name, "")
            if sheet_xml not in zf.NameToInfo:
                raise InputError(f"{src.name}: sheet {name!r} has no data part ({sheet_xml or 'none'}).", _REDO)
            with damaged(src, f"sheet {name!r}"):
                _scan(src, zf, sheet_xml, scan)
    _check_budget(src, scan)
    return scan


def pick_sheet(src: Source, names: list[str], want: str | int | None) -> str:
    if want is None:
        want = 0
    if isinstance(want, str) and want not in names and want.strip().isdigit():
        want = int(want)
    if isinstance(want, int) and 0 <= want < len(names):
        return names[want]
    if isinstance(want, str) and want in names:
        return want
    raise InputError(
        f"{src.name}: no sheet {want!r}; its sheets are: {', '.join(map(repr, names))}.",
        "Set source.sheet to one of these names or a 0-based index.",
    )


def _xml(src: Source, zf: zipfile.ZipFile, part: str) -> ET.Element:
    data = _bounded_read(src, zf, part, MAX_PART)
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise InputError(f"{src.name}: the workbook is damaged ({part} is not valid XML: {e}).", _REDO) from e


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _rels(src: Source, zf: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """Relationship id -> (type's last word, member name) of a part's .rels."""
    folder, base = posixpath.split(part)
    rels_name = posixpath.join(folder, "_rels", base + ".rels")
    if rels_name not in zf.NameToInfo:
        return {}
    out = {}
    for rel in _xml(src, zf, rels_name):
        target = rel.get("Target", "")
        target = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        out[rel.get("Id", "")] = (rel.get("Type", "").rsplit("/", 1)[-1], target)
    return out


def _workbook(src: Source, zf: zipfile.ZipFile) -> tuple[list[str], dict[str, str], set[str], bool]:
    """Sheet names in order, the parts calamine reads, and whether dates count from 1904."""
    main = next((t for kind, t in _rels(src, zf, "").values() if kind == "officeDocument"), "xl/workbook.xml")
    if main not in zf.NameToInfo:
        raise InputError(
            f"{src.name} is a zip file but not an Excel workbook (it has no {main}).",
            "Save the sheet as .xlsx or CSV.",
        )
    root, rels = _xml(src, zf, main), _rels(src, zf, main)
    date1904, names, sheets = False, list[str](), dict[str, str]()
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "workbookPr":
            date1904 = el.get("date1904", "0").strip().lower() in ("1", "true")
        elif tag == "sheet":
            rid = next((v for k, v in el.attrib.items() if _local(k) == "id"), "")
            names.append(el.get("name", ""))
            sheets[names[-1]] = rels.get(rid, ("", ""))[1]
    if not names:
        raise InputError(f"{src.name}: the workbook has no sheet.", _REDO)
    memory = {main, posixpath.join(posixpath.dirname(main), "_rels", posixpath.basename(main) + ".rels")}
    memory |= {t for kind, t in rels.values() if kind in ("sharedStrings", "styles")}
    return names, sheets, memory, date1904


def _bounded_read(src: Source, zf: zipfile.ZipFile, part: str, limit: int) -> bytes:
    with zf.open(part) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{src.name}: the workbook's {part} expands to more than {limit >> 20} MB.", _REDO)
    return data


def _bounded_size(src: Source, zf: zipfile.ZipFile, part: str, limit: int) -> None:
    """Decompress a part to count its real size (and check its CRC) without keeping it."""
    size = 0
    with zf.open(part) as f:
        while block := f.read(_BLOCK):
            size += len(block)
            if size > limit:
                raise InputError(f"{src.name}: the workbook's {part} expands to more than {limit >> 20} MB.", _REDO)


def _blocks(src: Source, zf: zipfile.ZipFile, part: str, scan: SheetScan) -> Iterator[bytes]:
    """The part's XML in pieces of about 1 MB, each cut before a `<c` so that no cell is split."""
    carry, total = b"", 0
    with zf.open(part) as f:
        while block := f.read(_BLOCK):
            total += len(block)
            if total > MAX_SHEET_XML:
                raise InputError(
                    f"{src.name}: sheet {scan.name!r} expands to more than {MAX_SHEET_XML >> 20} MB of XML.",
                    "Save the sheet as CSV, or split the workbook.",
                )
            data = carry + block
            cut = data.rfind(b"<c")
            if cut <= 0:
                cut = data.rfind(b"<")
            if cut <= 0 and len(data) > _MAX_CARRY:
                raise InputError(f"{src.name}: sheet {scan.name!r} is damaged (a cell larger than 32 MB).", _REDO)
            if cut <= 0:
                carry = data
                continue
            carry = data[cut:]
            yield data[:cut]
    if carry:
        yield carry


def _scan(src: Source, zf: zipfile.ZipFile, part: str, scan: SheetScan) -> None:
    with zf.open(part) as f:
        head = f.read(4096)
    prefixed = re.search(rb"<[A-Za-z_][\w.-]*:worksheet\b", head) is not None
    if prefixed or not _scan_fast(src, zf, part, scan) or (not _fits(scan) and scan.cells <= _RECOUNT):
        _reset(scan)  # the fast pass counts styled empty cells too: the exact one tells them apart
        _scan_exact(src, zf, part, scan)


def _scan_fast(src: Source, zf: zipfile.ZipFile, part: str, scan: SheetScan) -> bool:
    """The usual layout, with C-speed regexes; False when a cell is written any other way."""
    for blk in _blocks(src, zf, part, scan):
        cells = _CELL.findall(blk)
        if cells:
            letters = set(map(itemgetter(0), cells))
            if b"" in letters:
                return False
            rows = list(map(int, set(map(itemgetter(1), cells))))
            scan.add(rows, [column_number(c) for c in letters], len(cells))
        if b't="e"' in blk:
            found = _ERROR_CELL.findall(blk)
            if len(found) != blk.count(b't="e"'):
                return False
            for col, row, text in found:
                scan.error(int(row), column_number(col), text.decode("latin-1").strip())
        if not scan.date1904 and len(scan.sixties) < MAX_SIXTIES:
            for m in _SIXTY.finditer(blk):
                cell = _SIXTY_CELL.match(blk, max(0, blk.rfind(b"<c ", 0, m.start())))
                if cell and cell.end() == m.end():
                    scan.sixties.add((int(cell.group(2)), column_number(cell.group(1))))
        if scan.cells > LOAD_BUDGET // 40:
            break  # refused by the budget anyway
    return True


def _reset(scan: SheetScan) -> None:
    scan.first_row = scan.last_row = scan.first_col = scan.last_col = scan.cells = 0
    scan.errors.clear()
    scan.sixties.clear()


def _scan_exact(src: Source, zf: zipfile.ZipFile, part: str, scan: SheetScan) -> None:
    """Every tag in order: cells without `r` take the next position, as calamine places them."""
    row = col = 0
    cell: tuple[int, int, bytes] | None = None  # (row, col, t) of the open cell
    has_value = False
    for blk in _blocks(src, zf, part, scan):
        for m in _TAG.finditer(blk):
            closing, tag, attrs, empty = m.groups()
            if tag == b"row" and not closing:
                r = _ATTR_R.search(attrs)
                row = _number(src, scan, r.group(1).decode("latin-1")) if r else row + 1
                col = 0
            elif tag == b"c" and not closing:
                r = _ATTR_R.search(attrs)
                if r:
                    row, col = _cell_ref(src, scan, r.group(1).decode("latin-1"))
                else:
                    row, col = max(row, 1), col + 1
                t = _ATTR_T.search(attrs)
                cell, has_value = (row, col, t.group(1) if t else b"n"), False
                if empty:
                    cell = None
            elif tag in (b"v", b"is") and not closing and cell is not None:
                has_value = True
                if tag == b"v" and not empty:
                    text = blk[m.end() : blk.find(b"<", m.end())].decode("latin-1").strip()
                    if cell[2] == b"e":
                        scan.error(cell[0], cell[1], text[:40])
                    elif cell[2] == b"n" and not scan.date1904 and re.fullmatch(r"60(\.[0-9]*)?", text):
                        scan.sixties.add((cell[0], cell[1]))
            elif tag == b"c" and closing:
                if cell is not None and has_value:
                    scan.add([cell[0]], [cell[1]], 1)
                cell = None
        if scan.cells > LOAD_BUDGET // 40:
            break


def _number(src: Source, scan: SheetScan, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _MAX_ROW:
        raise InputError(f"{src.name}: sheet {scan.name!r} is damaged (a row numbered {text[:20]!r}).", _REDO)
    return int(text)


def _cell_ref(src: Source, scan: SheetScan, ref: str) -> tuple[int, int]:
    m = _REF.fullmatch(ref)
    if not m or column_number(m.group(1)) > _MAX_COL or int(m.group(2)) > _MAX_ROW:
        raise InputError(
            f"{src.name}: sheet {scan.name!r} is damaged (a malformed cell reference {ref[:20]!r}).", _REDO
        )
    return int(m.group(2)), column_number(m.group(1))


def _fits(scan: SheetScan) -> bool:
    rows, cols = scan.last_row - scan.first_row + 1, scan.last_col - scan.first_col + 1
    return not scan.cells or 64 * rows * cols + 40 * scan.cells <= LOAD_BUDGET


def _check_budget(src: Source, scan: SheetScan) -> None:
    if _fits(scan):
        return
    rows, cols = scan.last_row - scan.first_row + 1, scan.last_col - scan.first_col + 1
    first = f"{column_letters(scan.first_col)}{scan.first_row}"
    last = f"{column_letters(scan.last_col)}{scan.last_row}"
    if 4 * scan.cells >= rows * cols or 40 * scan.cells > LOAD_BUDGET:  # a large table, not stray cells
        more = "more than " if 40 * scan.cells > LOAD_BUDGET else ""
        raise InputError(
            f"{src.name}: sheet {scan.name!r} holds {more}{scan.cells:,} cells ({first} to {last}), more than t360 "
            f"loads from one workbook (about {LOAD_BUDGET / 72e6:.1f} million).",
            "Save the sheet as CSV (or split it into several workbooks) and read that.",
        )
    raise InputError(
        f"{src.name}: sheet {scan.name!r} has cells from {first} to {last}, {rows:,} rows by {cols:,} columns, "
        "too large a range to load.",
        "Delete the stray cells outside the table (or save the sheet as CSV) and try again.",
    )

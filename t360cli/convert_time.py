"""Vectorised datetime parsing (see t360cli.convert): strptime format, ISO 8601, Excel serial."""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.convert_common import Mask, Parsed, Texts, _as_array, _finish, _mask

__all__ = ["parse_datetime", "check_format", "check_timezone"]

_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_ISO = (
    rf"^{_DATE}(?:[T ][0-9]{{2}}:[0-9]{{2}}(?::[0-9]{{2}}(?:\.[0-9]+)?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?$"
)
_SERIAL_TEXT = r"^[0-9]+(?:\.[0-9]+)?$"
_SERIAL_NUMERIC = r"^[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?$"
_SERIAL_MAX = 2958466  # exclusive: 2958465 is 9999-12-31
_EXCEL_EPOCH = np.datetime64("1899-12-30T00:00:00", "s")
_EXCEL_EPOCH_1904 = np.datetime64("1904-01-01T00:00:00", "s")
_DAYS_1900_TO_1904 = 1462
_NAT = np.datetime64("NaT", "s")
_FIRST, _LAST = np.datetime64("0001-01-01T00:00:00"), np.datetime64("9999-12-31T23:59:59")
_DIRECTIVES = frozenset("aAbBcdfGHIjmMpSuUVwWxXyYzZ")
_TIME_DIRECTIVES = frozenset("HIMSfpXc")
_WIDTH = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}


Seconds = npt.NDArray[np.datetime64]  # datetime64[s]
Positions = npt.NDArray[np.intp]


@dataclass
class _Times:
    """Per-cell parse state while the stages run."""

    local: Seconds  # naive wall time in the source zone, else NaT
    utc: Seconds  # instant, for cells that carried an offset
    dateonly: Mask  # the cell named a day, no time
    todo: Mask  # given, not parsed yet


def _directives(fmt: str) -> list[str]:
    return [d for d in re.findall(r"%(.?)", fmt) if d != "%"]


def check_format(fmt: str) -> str | None:
    """Why a strptime format cannot be used for datetimes, or None when it can."""
    found = _directives(fmt)
    if "" in found:
        return f"format '{fmt}' ends with a lone %"
    unknown = sorted({d for d in found if d not in _DIRECTIVES})
    if unknown:
        return f"format '{fmt}' has an unknown directive %{unknown[0]}"
    if not found:
        return f"format '{fmt}' has no % directive (for example %d.%m.%Y %H:%M)"
    if not {"Y", "y", "G"} & set(found):
        return f"format '{fmt}' has no year (%Y or %y)"
    twice = sorted({d for d in found if found.count(d) > 1})
    if twice:
        return f"format '{fmt}' gives %{twice[0]} twice; each directive may appear once"
    try:
        pd.to_datetime(pd.Series(["2025-01-01"]), format=fmt, errors="coerce")
    except (ValueError, TypeError, OverflowError) as exc:
        return f"format '{fmt}' cannot be used: {exc}"
    return None


def check_timezone(tz: str) -> str | None:
    """Why `tz` is not a usable IANA time zone name, or None when it is."""
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"'{tz}' is not an IANA time zone name (for example Europe/Madrid or UTC)"
    return None


def _pending(arr: pa.Array, todo: Mask) -> tuple[Positions, pa.Array]:
    """Positions still to parse and their cells."""
    idx = np.flatnonzero(todo)
    return idx, (arr if len(idx) == len(arr) else arr.take(pa.array(idx)))


def _store(state: _Times, idx: Positions, secs: Seconds, aware: bool, dateonly: Mask | bool) -> None:
    """Record parsed cells (datetime64[s], NaT = not parsed) at positions `idx`."""
    ok = ~np.isnat(secs)
    (state.utc if aware else state.local)[idx[ok]] = secs[ok]
    if isinstance(dateonly, np.ndarray):
        state.dateonly[idx[ok]] = dateonly[ok]
    else:
        state.dateonly[idx[ok]] = not aware and dateonly
    state.todo[idx[ok]] = False


def _pandas(cells: pa.Array, fmt: str, aware: bool) -> Seconds:
    """pd.to_datetime of cells, as datetime64[s] (UTC when aware); NaT where refused."""
    res = pd.to_datetime(cells.to_pandas(), format=fmt, errors="coerce", utc=aware)
    secs: Seconds = (res.dt.tz_convert(None) if aware else res).to_numpy().astype("datetime64[s]")
    return secs


def _matrix(cells: pa.Array, width: int) -> npt.NDArray[np.uint8]:
    """(k, width) uint8 view of string cells (no nulls) that are all `width` bytes long."""
    k = len(cells)
    off = np.frombuffer(cells.buffers()[1], np.int32, k + 1, cells.offset * 4)
    return np.frombuffer(cells.buffers()[2], np.uint8, k * width, off[0]).reshape(k, width)


def _from_matrix(mat: npt.NDArray[np.uint8], valid: Mask | None = None) -> pa.Array:
    """String array of the rows of a (k, w) uint8 matrix; null where not `valid`."""
    k, w = mat.shape
    offsets = pa.py_buffer(np.arange(0, (k + 1) * w, w, dtype=np.int32))
    bitmap = None if valid is None or valid.all() else pa.array(valid).buffers()[1]
    data = pa.py_buffer(np.ascontiguousarray(mat))
    return pa.Array.from_buffers(pa.string(), k, [bitmap, offsets, data])


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _fixed_iso(mat: npt.NDArray[np.uint8]) -> Seconds:
    """datetime64[s] of ISO cells `YYYY-MM-DD[ HH:MM[:SS]]` given as a byte matrix
    (already checked by the ISO regex); NaT where the calendar or clock refuses."""
    digit = np.ascontiguousarray(mat.T).astype(np.int32) - 48  # one row per character

    def two(at: int) -> npt.NDArray[np.int32]:
        return digit[at] * 10 + digit[at + 1] if at < len(digit) else np.zeros(digit.shape[1], np.int32)

    year, mon, day, hh, mm, ss = digit[0] * 1000 + digit[1] * 100 + two(2), two(5), two(8), two(11), two(14), two(17)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok = (year >= 1) & (mon >= 1) & (mon <= 12) & (day >= 1) & (hh < 24) & (mm < 60) & (ss < 60)
    ok &= day <= _MONTH_DAYS[np.clip(mon, 0, 12)] + (leap & (mon == 2))
    # days since 1970-01-01 of the civil date (H. Hinnant's days_from_civil); year >= 1
    y = year - (mon <= 2)
    era, yoe = y // 400, y % 400
    doy = (153 * np.where(mon > 2, mon - 3, mon + 9) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    secs = days.astype(np.int64) * 86400 + (hh * 3600 + mm * 60 + ss)
    return np.where(ok, secs, np.iinfo(np.int64).min).view("datetime64[s]")


def _fixed_layout(fmt: str) -> tuple[str, dict[str, int], int] | None:
    """(regex, byte offset of each field, cell length) for the zero-padded cells of fmt.

    Only for formats of %Y %m %d %H %M %S (each once; year, month and day present)
    and literals, whose zero-padded cells all have one width; None otherwise.
    """
    starts: dict[str, int] = {}
    regex, pos = [], 0
    for piece in re.split(r"(%.)", fmt):
        if len(piece) == 2 and piece[0] == "%" and piece != "%%":
            if piece[1] not in _WIDTH or piece[1] in starts:
                return None
            starts[piece[1]] = pos
            regex.append(f"[0-9]{{{_WIDTH[piece[1]]}}}")
            pos += _WIDTH[piece[1]]
        else:
            literal = piece.replace("%%", "%")
            regex.append(re.escape(literal))
            pos += len(literal.encode())
    has = set(starts)
    if not {"Y", "m", "d"} <= has or ("M" in has) > ("H" in has) or ("S" in has) > ("M" in has):
        return None
    return f"^{''.join(regex)}$", starts, pos


def _to_iso_bytes(cells: pa.Array, starts: dict[str, int], length: int) -> pa.Array:
    """Fixed-width cells (no nulls) rewritten as ISO text by moving bytes, not parsing."""
    year, month, day = starts["Y"], starts["m"], starts["d"]
    cols: list[int | str] = [year, year + 1, year + 2, year + 3, "-", month, month + 1, "-", day, day + 1]
    if "H" in starts:
        minutes = [starts["M"], starts["M"] + 1] if "M" in starts else ["0", "0"]
        cols += [" ", starts["H"], starts["H"] + 1, ":", *minutes]
    if "S" in starts:
        cols += [":", starts["S"], starts["S"] + 1]
    out = _matrix(cells, length)[:, [c if isinstance(c, int) else 0 for c in cols]]
    for j, c in enumerate(cols):
        if isinstance(c, str):
            out[:, j] = ord(c)
    return _from_matrix(out)


def _parse_with_format(arr: pa.Array, state: _Times, fmt: str) -> pa.Array:
    """Cells in fmt. Zero-padded fixed-width ones become ISO text for the ISO stage
    (fast); the rest go through pandas strptime (about 1.5 s per million cells).
    Returns the text the ISO stage reads."""
    layout, text, rest = _fixed_layout(fmt), arr, state.todo
    if layout:
        hit = pc.fill_null(pc.match_substring_regex(arr, layout[0]), False)
        if pc.any(hit).as_py():
            iso = _to_iso_bytes(arr.filter(hit), *layout[1:])
            text = iso if pc.all(hit).as_py() else pc.replace_with_mask(arr, hit, iso)
            rest = state.todo & ~hit.to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(rest)
    if len(idx):
        aware = "%z" in fmt or "%Z" in fmt
        secs = _pandas(arr.take(pa.array(idx)), fmt, aware)
        _store(state, idx, secs, aware, not _TIME_DIRECTIVES & set(_directives(fmt)))
    return text


def _parse_iso(arr: pa.Array, state: _Times) -> None:
    """ISO 8601 cells: naive ones by byte arithmetic, those with an offset by pandas."""
    idx, sub = _pending(arr, state.todo)
    if not len(idx):
        return
    iso = pc.match_substring_regex(sub, _ISO)
    # the ISO regex allows + Z and a third - only in an offset
    marks = pc.or_(pc.match_substring(sub, "+"), pc.greater(pc.count_substring(sub, "-"), 2))
    aware = pc.and_(iso, pc.or_(marks, pc.ends_with(sub, "Z"))).to_numpy(zero_copy_only=False)
    naive = pc.fill_null(iso, False).to_numpy(zero_copy_only=False) & ~aware
    size = pc.binary_length(sub).to_numpy(zero_copy_only=False)
    for width in (10, 16, 19):  # a fraction of a second is cut with the seconds
        sel = naive & ((size == width) if width < 19 else (size >= 19))
        if sel.any():
            part = sub if sel.all() else sub.filter(pa.array(sel))
            if width == 19 and (size[sel] > 19).any():
                part = pc.utf8_slice_codeunits(part, 0, 19)
            _store(state, idx[sel], _fixed_iso(_matrix(part, width)), False, width == 10)
    if aware.any():
        part = sub if aware.all() else sub.filter(pa.array(aware))
        _store(state, idx[aware], _pandas(part, "ISO8601", True), True, False)


def _parse_serial(arr: pa.Array, state: _Times, mask: Mask | None, date1904: bool = False) -> None:
    """Excel serial dates, rounded to the second (SPEC 12). The 1900 system counts from
    1899-12-30 from serial 61 on; its serial 60 is Excel's fictitious 1900-02-29 (left
    unparsed: a reject) and serials below 60 are their true day (from 1899-12-31). The
    1904 system (Mac Excel) counts from 1904-01-01, serial 0 included."""
    idx, sub = _pending(arr, state.todo)
    if not len(idx):
        return
    ok = pc.match_substring_regex(sub, _SERIAL_TEXT)
    if mask is not None:
        num = pc.and_(pa.array(mask[idx]), pc.match_substring_regex(sub, _SERIAL_NUMERIC))
        ok = pc.or_(ok, num)
    ok = ok.to_numpy(zero_copy_only=False)
    if not ok.any():
        return
    days = pc.cast(sub.filter(pa.array(ok)), pa.float64()).to_numpy(zero_copy_only=False)
    if date1904:
        keep = (days >= 0) & (days < _SERIAL_MAX - _DAYS_1900_TO_1904)
        epoch = np.full(len(days), _EXCEL_EPOCH_1904)
    else:
        keep = (days >= 1) & (days < _SERIAL_MAX) & ((days < 60) | (days >= 61))
        epoch = np.where(days < 60, _EXCEL_EPOCH + np.timedelta64(1, "D"), _EXCEL_EPOCH)
    secs = np.rint(days[keep] * 86400).astype(np.int64).astype("timedelta64[s]")
    pos = idx[ok][keep]
    state.local[pos] = epoch[keep] + secs
    state.dateonly[pos] = days[keep] == np.floor(days[keep])
    state.todo[pos] = False


def _localize(state: _Times, tz: str) -> Mask:
    """Fill state.utc from state.local; return the mask of local times that do not exist."""
    has = ~np.isnat(state.local)
    if not has.any():
        return has
    if tz == "UTC":
        state.utc[has] = state.local[has]
        return np.zeros(len(has), bool)
    local = pd.DatetimeIndex(state.local[has])
    earlier = np.ones(len(local), bool)  # a repeated hour is its first (DST) occurrence
    utc = local.tz_localize(tz, ambiguous=earlier, nonexistent="NaT").tz_convert(None)
    state.utc[has] = utc.to_numpy().astype("datetime64[s]")
    return has & np.isnat(state.utc)


def _wall(utc: Seconds, out_tz: str) -> Seconds:
    """Wall-clock time in out_tz (datetime64[s]) of UTC instants."""
    if out_tz == "UTC":
        return utc
    idx = pd.DatetimeIndex(utc).tz_localize("UTC").tz_convert(out_tz).tz_localize(None)
    wall: Seconds = idx.to_numpy().astype("datetime64[s]")
    return wall


def _minutes_text(wall: Seconds) -> pa.Array:
    """`YYYY-MM-DD HH:mm` of datetime64[s] values in years 1..9999 (seconds cut); NaT: null."""
    valid = ~np.isnat(wall)
    filled = np.where(valid, wall, np.datetime64(0, "s"))
    stamps = pa.array(filled, pa.timestamp("s")).cast(pa.string())  # all 19 bytes long
    return _from_matrix(_matrix(stamps, 19)[:, :16], valid)


def parse_datetime(
    values: Texts,
    numeric: Mask | None = None,
    fmt: str | None = None,
    tz: str = "UTC",
    out_tz: str = "UTC",
    date_only: bool = False,
    date1904: bool = False,
) -> Parsed:
    """Timestamps to `YYYY-MM-DD HH:mm` in out_tz (date_only: `YYYY-MM-DD`).

    Tried in order: `fmt` (strptime), ISO 8601, Excel serial (1..2958465; date1904: the
    workbook counts from 1904). Naive values
    are in `tz`; seconds are truncated; a repeated local time is the earlier instant.
    date_only keeps the date of the converted time, or the date of a date-only cell.
    Rejects: `'{v}' does not match format {fmt}` (with fmt), else `'{v}' is not an ISO
    8601 date or time; set format: in the mapping`; `'{v}' does not exist in {tz}
    (clock change)` for a local time skipped by a clock change.
    """
    arr = _as_array(values)
    n = len(arr)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    state = _Times(np.full(n, _NAT), np.full(n, _NAT), np.zeros(n, bool), valid.copy())
    text = _parse_with_format(arr, state, fmt) if fmt else arr
    _parse_iso(text, state)
    _parse_serial(text, state, _mask(numeric, n), date1904)
    gap = _localize(state, tz)
    wall = _wall(state.utc, out_tz)
    wall[(wall < _FIRST) | (wall > _LAST)] = _NAT  # years 1..9999 only
    if date_only:
        gap &= ~state.dateonly
        days = np.where(state.dateonly, state.local, wall).astype("datetime64[D]")
        out = pa.array(days, pa.date32()).cast(pa.string())
    else:
        out = _minutes_text(wall)
    suffix = (
        f"' does not match format {fmt}" if fmt else "' is not an ISO 8601 date or time; set format: in the mapping"
    )
    return _finish(arr, out, suffix, ((gap, f"' does not exist in {tz} (clock change)"),))

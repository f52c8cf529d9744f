"""Pure, vectorised cell parsers: text column in, canonical text and reasons out.

Every parser takes a pyarrow string array (or ChunkedArray) of trimmed cells, null
where the cell is empty, and returns `Parsed(values, errors)`: `values` holds the
canonical text (null where the input was null or invalid), `errors` the reason
(without the field name, null where fine). Work is done over whole columns with
pyarrow.compute, numpy and pandas; Python loops run only over failing cells or over
the unique values of a column.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from t360cli.codes import COUNTRIES, COUNTRY_ALIASES, CURRENCIES
from t360cli.convert_common import _NULL, Mask, Parsed, Texts, _as_array, _finish, _mask, separators
from t360cli.convert_time import check_format, check_timezone, parse_datetime

__all__ = [
    "Parsed",
    "parse_decimal",
    "parse_integer",
    "parse_datetime",
    "parse_currency",
    "parse_country",
    "check_format",
    "check_timezone",
]


# --- numbers -------------------------------------------------------------------------


_DEC_FIXES = ((r"^\+", ""), (r"^(-?)0+([0-9])", r"\1\2"), (r"^(-?)\.", r"\10."), (r"\.$", ""))
_INT_FIXES = ((r"\.0*$", ""), (r"^\+", ""), (r"^(-?)0+([0-9])", r"\1\2"), (r"^-0$", "0"))


def _numbers(arr: pa.Array, mask: Mask | None, dec: str, thou: str, whole: bool) -> pa.Array:
    """Valid cells in canonical '.'-decimal form (see parse_decimal), null elsewhere."""
    point, group = re.escape(dec), re.escape(thou)
    digits = f"(?:[0-9]{{1,3}}(?:{group}[0-9]{{3}})+|[0-9]+)" if thou else "[0-9]+"
    if whole:
        text_re, num_re = f"^[+-]?{digits}$", r"^[+-]?[0-9]+(?:\.0*)?$"
    else:
        text_re = f"^[+-]?(?:{digits}(?:{point}[0-9]*)?|{point}[0-9]+)$"
        num_re = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$"
    ok = pc.match_substring_regex(arr, text_re)
    norm = pc.replace_substring(arr, thou, "") if thou else arr
    if dec != ".":
        norm = pc.replace_substring(norm, dec, ".")
    if mask is not None:  # numeric cells: already '.'-decimal, no groups
        numeric = pa.array(mask)
        ok = pc.if_else(numeric, pc.match_substring_regex(arr, num_re), ok)
        norm = pc.if_else(numeric, arr, norm)
    out = pc.if_else(ok, norm, _NULL)
    needs = r"^\+|^-?0|\." if whole else r"^\+|^-?0[0-9]|^-?\.|\.$"
    fix = pc.fill_null(pc.match_substring_regex(out, needs), False)
    if pc.any(fix).as_py():
        sub = out.filter(fix)
        for pattern, rewrite in _INT_FIXES if whole else _DEC_FIXES:
            sub = pc.replace_substring_regex(sub, pattern, rewrite)
        out = pc.replace_with_mask(out, fix, sub)
    return out


_EXPONENT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]{1,2}")


def _exact(text: str, whole: bool) -> str | None:
    """Positional text of a number written with an exponent (`1e5` -> `100000`)."""
    if not _EXPONENT.fullmatch(text):
        return None
    number = Decimal(text)
    if whole:
        return str(int(number)) if number == number.to_integral_value() else None
    return format(number, "f")


def _exact_numbers(arr: pa.Array, out: pa.Array, mask: Mask | None, whole: bool) -> pa.Array:
    """Rare path: numeric cells with an exponent (JSON `1e5`), exactly, via Decimal."""
    if mask is None:
        return out
    todo = np.flatnonzero(mask & pc.and_(arr.is_valid(), out.is_null()).to_numpy(False))
    if not len(todo):
        return out
    fixed = [_exact(text, whole) for text in arr.take(pa.array(todo)).to_pylist()]
    hit = np.zeros(len(arr), bool)
    hit[todo] = True
    return pc.replace_with_mask(out, pa.array(hit), pa.array(fixed, pa.string()))


MAX_DIGITS = 38  # decimal128(38): the control totals' precision (SPEC 11)


def _bound_digits(arr: pa.Array, out: pa.Array, parsed: Parsed) -> Parsed:
    """Cells whose canonical number needs more than MAX_DIGITS digits become rejects."""
    longest = pc.max(pc.binary_length(out)).as_py()
    if longest is None or longest <= MAX_DIGITS:  # the usual chunk: no text that long, nothing to count
        return parsed
    digits = pc.utf8_length(pc.replace_substring(pc.replace_substring_regex(out, r"^-?0*", ""), ".", ""))
    long = pc.fill_null(pc.greater(digits, MAX_DIGITS), False)
    if not pc.any(long).as_py():
        return parsed
    texts = [_shorten(t) for t in arr.filter(long).to_pylist()]
    msgs = pa.array([f"'{t}' has more than {MAX_DIGITS} significant digits" for t in texts], pa.string())
    return Parsed(pc.if_else(long, _NULL, parsed.values), pc.replace_with_mask(parsed.errors, long, msgs))


def _shorten(text: str) -> str:
    return text if len(text) <= 48 else text[:40] + "..."


def parse_decimal(
    values: Texts, numeric: Mask | None = None, decimal: str = ".", thousands: str | None = None
) -> Parsed:
    """Decimal numbers, precision kept: `+1,234.50` -> `1234.50`, `.5` -> `0.5`.

    A leading `+`, group separators and redundant leading zeros go; a `-` stays
    (`-0.00` -> `-0.00`); a trailing point without digits goes (`5.` -> `5`).
    Reject: `'{v}' is not a number`; `'{v}' has more than 38 significant digits`.
    """
    arr = _as_array(values)
    mask = _mask(numeric, len(arr))
    dec, thou = separators(decimal, thousands)
    out = _numbers(arr, mask, dec, thou, whole=False)
    out = _exact_numbers(arr, out, mask, whole=False)
    return _bound_digits(arr, out, _finish(arr, out, "' is not a number"))


def parse_integer(
    values: Texts, numeric: Mask | None = None, decimal: str = ".", thousands: str | None = None
) -> Parsed:
    """Whole numbers without leading zeros: `007` -> `7`, `-0` -> `0`, `1,234` -> `1234`.

    Text with a decimal point (`3.0`) is refused; a numeric cell whose fraction is
    zero (`5.0`, `1e3`) is a whole number. Reject: `'{v}' is not a whole number`;
    `'{v}' has more than 38 significant digits`.
    """
    arr = _as_array(values)
    mask = _mask(numeric, len(arr))
    dec, thou = separators(decimal, thousands)
    out = _numbers(arr, mask, dec, thou, whole=True)
    out = _exact_numbers(arr, out, mask, whole=True)
    return _bound_digits(arr, out, _finish(arr, out, "' is not a whole number"))


# --- codes ---------------------------------------------------------------------------


def _by_unique(arr: pa.Array, lookup: Callable[[str], str | None]) -> pa.Array:
    """Apply `lookup(text) -> canonical | None` to each distinct value, then spread back."""
    enc = arr.dictionary_encode()
    mapped = pa.array([lookup(v) for v in enc.dictionary.to_pylist()], pa.string())
    return mapped.take(enc.indices)


def parse_currency(values: Texts) -> Parsed:
    """ISO 4217 codes, upper-cased. Reject: `'{v}' is not an ISO 4217 currency code`."""
    arr = _as_array(values)
    upper = pc.utf8_upper(arr)
    ok = pc.is_in(upper, value_set=_CURRENCY_SET)
    out = pc.if_else(ok, upper, _NULL)
    return _finish(arr, out, "' is not an ISO 4217 currency code")


_CURRENCY_SET = pa.array(sorted(CURRENCIES), pa.string())


def _fold(name: str) -> str:
    """Lower case, accents and extra spaces removed, typographic apostrophes made plain."""
    text = unicodedata.normalize("NFKD", name.replace("\u2019", "'"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.lower().split())


def _country_table() -> tuple[frozenset[str], dict[str, str]]:
    alpha2 = frozenset(a2 for a2, _, _ in COUNTRIES)
    table = {a3: a2 for a2, a3, _ in COUNTRIES}
    table.update({_fold(name): a2 for a2, _, name in COUNTRIES})
    table.update({_fold(alias): a2 for alias, a2 in COUNTRY_ALIASES.items()})
    return alpha2, table


_ALPHA2, _COUNTRY = _country_table()


def _country(text: str) -> str | None:
    upper = text.upper()
    if upper in _ALPHA2:
        return upper
    return _COUNTRY.get(upper) or _COUNTRY.get(_fold(text))


def parse_country(values: Texts) -> Parsed:
    """ISO 3166-1 alpha-2, upper-cased; alpha-3 codes and English names normalised.

    `es`, `ESP`, `Spain`, `united kingdom`, `UK`, `USA` -> `ES`/`GB`/`US`.
    Reject: `'{v}' is not a known country`.
    """
    arr = _as_array(values)
    out = _by_unique(arr, _country) if len(arr) else pa.array([], pa.string())
    return _finish(arr, out, "' is not a known country")

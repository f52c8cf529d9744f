"""Vectorised building blocks for bench/gen.py: row plans, formatted columns, a fast CSV writer.

Every column is built for the whole file at once with numpy and pyarrow.compute; nothing
loops over rows in Python, so a million rows take a few seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Timestamps are drawn from a window without a daylight-saving change in Europe, so that a
# mapping with `timezone: Europe/Madrid` never meets a local time that does not exist.
FIRST_DAY = date(2025, 4, 1)
DAYS = 180

ORIGINAL, DUPLICATE, CONFLICT = 0, 1, 2


@dataclass
class Plan:
    """Which base row each output row comes from, and whether it is a copy."""

    src: np.ndarray  # int64, base row index of each output row
    copy: np.ndarray  # int8, ORIGINAL, DUPLICATE (exact copy) or CONFLICT (same id, changed)
    n_base: int

    def take(self, values: np.ndarray) -> np.ndarray:
        """The base-row array `values` laid out in output order."""
        return values[self.src]

    @property
    def conflict(self) -> np.ndarray:
        return self.copy == CONFLICT

    @property
    def original(self) -> np.ndarray:
        return self.copy == ORIGINAL


def base_size(rows: int, dup_frac: float, conflict_frac: float) -> tuple[int, int, int]:
    """Split `rows` output rows into (base rows, exact duplicates, conflicting copies)."""
    n_dup = int(rows * dup_frac)
    n_conf = int(rows * conflict_frac)
    return rows - n_dup - n_conf, n_dup, n_conf


def make_plan(rng: np.random.Generator, eligible: np.ndarray, n_dup: int, n_conf: int) -> Plan:
    """Copy `n_dup` + `n_conf` distinct eligible base rows to random later positions."""
    n_base = len(eligible)
    pool = np.flatnonzero(eligible)
    picked = rng.choice(pool, size=n_dup + n_conf, replace=False)
    # Each copy lands strictly after its original: key = original index + a positive offset.
    offsets = rng.uniform(0.5, np.maximum(n_base - picked, 1.0))
    keys = np.concatenate([np.arange(n_base, dtype=np.float64), picked + offsets])
    order = np.argsort(keys, kind="stable")
    src = np.concatenate([np.arange(n_base), picked])[order]
    kinds = np.concatenate(
        [
            np.zeros(n_base, np.int8),
            np.full(n_dup, DUPLICATE, np.int8),
            np.full(n_conf, CONFLICT, np.int8),
        ]
    )[order]
    return Plan(src=src, copy=kinds, n_base=n_base)


def choice(rng: np.random.Generator, values: list[str], n: int, p: list[float] | None = None) -> np.ndarray:
    """Indices into `values` (as a numpy array, so that they can go through a Plan)."""
    weights = None if p is None else np.asarray(p, dtype=np.float64) / sum(p)
    return rng.choice(len(values), size=n, p=weights)


def labels(values: list[str], idx: np.ndarray) -> pa.Array:
    """The strings `values[idx]`, as a pyarrow array."""
    return pc.take(pa.array(values, pa.string()), pa.array(idx))


def text(numbers: np.ndarray) -> pa.Array:
    """Integers as decimal text."""
    return pc.cast(pa.array(numbers), pa.string())


def padded(numbers: np.ndarray, width: int) -> pa.Array:
    """Non-negative integers as zero-padded text of at least `width` digits."""
    return pc.utf8_lpad(text(numbers), width, "0")


def money(cents: np.ndarray, decimal: str = ".", thousands: str = "") -> pa.Array:
    """Non-negative amounts in cents as `1234.50` (or `1.234,50` with other separators)."""
    units = cents // 100
    whole = text(units)
    if thousands:
        groups = [units // 10**9, units // 10**6 % 1000, units // 1000 % 1000, units % 1000]
        whole = text(groups[0])
        for g in groups[1:]:
            whole = pc.binary_join_element_wise(whole, padded(g, 3), thousands)
        whole = pc.utf8_ltrim(whole, "0" + thousands)
        whole = pc.if_else(pc.equal(whole, ""), "0", whole)
    return pc.binary_join_element_wise(whole, padded(cents % 100, 2), decimal)


def seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random seconds since FIRST_DAY 00:00 within the window."""
    return rng.integers(0, DAYS * 86400, size=n)


def stamp(secs: np.ndarray, style: str = "iso", with_seconds: bool = True) -> pa.Array:
    """Seconds since FIRST_DAY as `2025-07-21 11:03:12` (iso) or `21.07.2025 11:03` (eu)."""
    days = [FIRST_DAY + timedelta(days=i) for i in range(DAYS + 1)]
    fmt = "%Y-%m-%d" if style == "iso" else "%d.%m.%Y"
    day = labels([d.strftime(fmt) for d in days], secs // 86400)
    tod = secs % 86400
    clock = pc.binary_join_element_wise(padded(tod // 3600, 2), padded(tod // 60 % 60, 2), ":")
    if with_seconds:
        clock = pc.binary_join_element_wise(clock, padded(tod % 60, 2), ":")
    return pc.binary_join_element_wise(day, clock, " ")


def corrupt(col: pa.Array, mask: np.ndarray, rng: np.random.Generator, bad: list[str]) -> pa.Array:
    """`col` with the cells under `mask` replaced by one of the `bad` values at random."""
    repl = labels(bad, rng.integers(0, len(bad), size=len(col)))
    return pc.if_else(pa.array(mask), repl, col)


def csv_quote(col: pa.Array, delimiter: str) -> pa.Array:
    """Quote the cells that need it (delimiter, quote or line break), as a spreadsheet would."""
    special = "[" + ("\\t" if delimiter == "\t" else delimiter) + '"\\r\\n]'
    needs = pc.match_substring_regex(col, special)
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, col)


def write_csv(path: Path, columns: dict[str, pa.Array], delimiter: str = ",", encoding: str = "utf-8") -> None:
    """Write the columns as CSV lines (header first), quoting only where needed."""
    cells = [csv_quote(c, delimiter) for c in columns.values()]
    lines = pc.binary_join_element_wise(*cells, delimiter)
    lines = pc.cast(pc.binary_join_element_wise(lines, "", "\n"), pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[: len(lines) + 1]
    body = memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]
    header = delimiter.join(columns) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.encode(encoding))
        f.write(body if encoding in ("utf-8", "utf8") else bytes(body).decode().encode(encoding))


def write_expected(path: Path, counts: dict[str, int]) -> Path:
    """Write what `t360 validate` should report for the file, beside it."""
    total = sum(counts[k] for k in ("rows_valid", "rows_rejected", "rows_filtered", "rows_duplicate"))
    out = path.with_name(path.name + ".expected.json")
    out.write_text(json.dumps({"rows_read": total, **counts}, indent=2) + "\n")
    return out

"""The floor: the least work that reads a CSV export and serialises it as JSON bodies.

    python bench/floor.py FILE.csv

Streams the file with `pyarrow.csv.open_csv` (every column as text, 1 MiB blocks) and
turns every 500-row slice into a JSON array of objects (dicts built column-wise, orjson).
No mapping, no validation, nothing sent. Prints one JSON line: rows, bodies, bytes,
seconds and rows/s (time measured inside the process, imports excluded).
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv

BATCH = 500


def header(path: Path) -> list[str]:
    """The header's column names, as the CSV module reads them."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f))


def bodies(path: Path, batch: int = BATCH) -> Iterator[tuple[int, bytes]]:
    """Yield (rows, JSON array) for every `batch` rows of the file."""
    names = header(path)
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 20),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False),
    )
    carry: list[list] = [[] for _ in names]
    for rb in reader:
        cols = [c + rb.column(i).to_pylist() for i, c in enumerate(carry)]
        n = len(cols[0])
        full = n - n % batch
        for lo in range(0, full, batch):
            rows = zip(*(c[lo : lo + batch] for c in cols), strict=True)
            yield batch, orjson.dumps([dict(zip(names, r, strict=True)) for r in rows])
        carry = [c[full:] for c in cols]
    if carry[0]:
        rows = zip(*carry, strict=True)
        yield len(carry[0]), orjson.dumps([dict(zip(names, r, strict=True)) for r in rows])


def run(path: Path) -> dict[str, float]:
    """Read and serialise the whole file; the figures of the run."""
    t0 = time.perf_counter()
    rows = n_bodies = n_bytes = 0
    for n, body in bodies(path):
        rows += n
        n_bodies += 1
        n_bytes += len(body)
    secs = time.perf_counter() - t0
    return {
        "rows": rows,
        "bodies": n_bodies,
        "bytes": n_bytes,
        "seconds": round(secs, 3),
        "rows_per_s": round(rows / secs) if secs > 0 else 0,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/floor.py FILE.csv", file=sys.stderr)
        return 2
    print(orjson.dumps(run(Path(argv[0]))).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

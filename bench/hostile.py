"""Hostile inputs against `t360 validate`: peak RSS, time and outcome of each (SPEC 11).

    python bench/hostile.py            # every case, then the inputs are removed
    python bench/hostile.py --keep     # keep bench/out/hostile/ to look at the inputs
    python bench/hostile.py --only xlsx

The bar: any input of up to 50 MB is read within 500 MB of peak RSS, or refused with one
sentence (exit 2, no traceback, never `unexpected`). Each case runs `t360 validate` as its own
subprocess; peak RSS comes from `os.wait4` (ru_maxrss), as in bench/validate.py. Exit 0 when
every case meets the bar.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import random
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from validate import OUT, T360, Run, measure  # noqa: E402

HERE = OUT / "hostile"
MB = 1_000_000
SIZE = 50 * MB
RSS_BAR_MIB = 500
MAPPING = "kind: customers\nfields:\n  customerId: a\n  firstName: b\n"
LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@dataclass(frozen=True)
class Case:
    name: str
    file: str  # the input, under HERE
    make: Callable[[Path], None]
    mapping: str = "mapping.yaml"
    config: str | None = None


def chunks(total: int, block: bytes) -> Iterator[bytes]:
    """`block` repeated to `total` bytes, in pieces (the generator holds one block)."""
    left = total
    while left > 0:
        yield block[:left]
        left -= len(block)


def write_stream(path: Path, head: bytes, body: Iterator[bytes], tail: bytes = b"") -> None:
    with open(path, "wb") as f:
        f.write(head)
        for part in body:
            f.write(part)
        f.write(tail)


def csv_rows(path: Path) -> None:
    """A well-formed 50 MB CSV: the baseline."""
    with open(path, "wb") as f:
        f.write(b"a,b\n")
        i = 0
        while f.tell() < SIZE:
            f.write(b"".join(b"c%09d,name %d\n" % (j, j) for j in range(i, i + 10_000)))
            i += 10_000


def csv_one_line(path: Path) -> None:
    write_stream(path, b"a,b\n1,", chunks(SIZE, b"x" * MB), b"\n")


def csv_random(path: Path) -> None:
    rng = random.Random(11)
    write_stream(path, b"", (rng.randbytes(MB) for _ in range(SIZE // MB)))


def jsonl_one_deep_line(path: Path) -> None:
    deep = 10_000
    pad = SIZE - 2 * deep - 20
    write_stream(path, b'{"a": ' + b"[" * deep + b'"', chunks(pad, b"x" * MB), b'"' + b"]" * deep + b"}\n")


def jsonl_deep_lines(path: Path) -> None:
    """One ordinary record, then 2,500 records each nested 10,000 deep (each a reject)."""
    line = b'{"a": "1", "b": ' + b"[" * 10_000 + b"]" * 10_000 + b"}\n"
    write_stream(path, b'{"a": "c1", "b": "x"}\n', chunks(SIZE - SIZE % len(line), line))


def json_truncated(path: Path) -> None:
    record = b'{"a": "c000000001", "b": "a name that is long enough to fill some bytes"}, '
    write_stream(path, b"[", chunks(SIZE, record))  # ends mid-record, no closing bracket


def gz_bomb(path: Path, total: int = 2_000 * MB) -> None:
    """A few MB that inflate to 2 GB: a header line, then zeros without a line break."""
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(b"a,b\n")
        for part in chunks(total, bytes(8 * MB)):
            f.write(part)


def parquet_gz_bomb(path: Path) -> None:
    gz_bomb(path, 2_300 * MB)  # past the 2 GiB a .parquet.gz may inflate to


def _workbook(cells: dict[str, object]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["a", "b"])
    ws.append(["c1", "x"])
    for ref, value in cells.items():
        ws[ref] = value
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def xlsx_stray(ref: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(_workbook({ref: "stray"}))

    return make


def xlsx_zip_bomb(path: Path) -> None:
    """A workbook whose sheet XML inflates to 1 GB: whitespace between two rows."""
    source = zipfile.ZipFile(io.BytesIO(_workbook({})))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename != "xl/worksheets/sheet1.xml":
                out.writestr(info.filename, data)
                continue
            head, _, tail = data.partition(b"</row>")
            with out.open(info.filename, "w", force_zip64=True) as sheet:
                sheet.write(head + b"</row>")
                for part in chunks(1_000 * MB, b" " * (8 * MB)):
                    sheet.write(part)
                sheet.write(tail)


def big_mapping(path: Path) -> None:
    path.write_bytes(MAPPING.encode() + b"# " + b"x" * (1_500_000 - len(MAPPING) - 3) + b"\n")


def laughs_mapping(path: Path) -> None:
    path.write_text(MAPPING + LAUGHS, encoding="utf-8")


def laughs_config(path: Path) -> None:
    path.write_text("batch_size: 100\n" + LAUGHS, encoding="utf-8")


def small_csv(path: Path) -> None:
    path.write_text("a,b\nc1,x\n", encoding="utf-8")


CASES = [
    Case("csv, 50 MB of ordinary rows (baseline)", "rows.csv", csv_rows),
    Case("csv, one 50 MB line", "one_line.csv", csv_one_line),
    Case("csv, 50 MB of random bytes", "random.csv", csv_random),
    Case("jsonl, one 50 MB line nested 10,000 deep", "deep_line.jsonl", jsonl_one_deep_line),
    Case("jsonl, 50 MB of lines nested 10,000 deep", "deep_lines.jsonl", jsonl_deep_lines),
    Case("json, 50 MB array cut mid-record", "truncated.json", json_truncated),
    Case("csv.gz bomb, inflates to 2 GB", "bomb.csv.gz", gz_bomb),
    Case("parquet.gz bomb, inflates to 2.3 GB", "bomb.parquet.gz", parquet_gz_bomb),
    Case("xlsx, stray cell at XFD1048576", "stray_max.xlsx", xlsx_stray("XFD1048576")),
    Case("xlsx, stray cell at XFD5000", "stray_5000.xlsx", xlsx_stray("XFD5000")),
    Case("xlsx, sheet XML inflates to 1 GB", "zip_bomb.xlsx", xlsx_zip_bomb),
    Case("mapping of 1.5 MB", "small.csv", small_csv, mapping="big_mapping.yaml"),
    Case("mapping, YAML billion laughs", "small.csv", small_csv, mapping="laughs_mapping.yaml"),
    Case("config, YAML billion laughs", "small.csv", small_csv, config="laughs_config.yaml"),
]
EXTRA_FILES = {"big_mapping.yaml": big_mapping, "laughs_mapping.yaml": laughs_mapping}
EXTRA_FILES["laughs_config.yaml"] = laughs_config


def first_line(run: Run) -> str:
    for text in (run.stderr, run.stdout):
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return ""


def verdict(run: Run) -> str:
    """'ok' when the case meets the bar: rows read (exit 0/1) within the RSS bar, or exit 2 with
    one sentence (no traceback, never `unexpected`) within the bar as well."""
    text = run.stdout + run.stderr
    if run.code not in (0, 1, 2) or "Traceback" in text or "unexpected" in text:
        return "FAIL"
    return "ok" if run.rss_kib / 1024 < RSS_BAR_MIB else "FAIL (memory)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs in bench/out/hostile/")
    ap.add_argument("--only", default="", help="run the cases whose name holds this text")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per case")
    args = ap.parse_args(argv)
    if not T360.exists():
        print(f"{T360} not found: install the project (make venv).", file=sys.stderr)
        return 2
    HERE.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("T360_")}
    env["T360_STATE_DIR"] = str(HERE / "state")
    (HERE / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    failures = 0
    print(f"{'case':44} {'input':>9} {'exit':>4} {'peak RSS':>9} {'time':>7}  verdict  first line")
    try:
        for case in (c for c in CASES if args.only in c.name):
            failures += run_case(case, env, args.timeout)
    finally:
        if not args.keep:
            shutil.rmtree(HERE, ignore_errors=True)
    print(f"{failures} case(s) miss the bar" if failures else "every case meets the bar (< 500 MiB, or a sentence)")
    return 1 if failures else 0


def run_case(case: Case, env: dict[str, str], timeout: float) -> int:
    path = HERE / case.file
    if not path.exists():
        case.make(path)
    for name in (case.mapping, case.config):
        if name and not (HERE / name).exists():
            EXTRA_FILES[name](HERE / name)
    cmd = [str(T360), "validate", str(path), "-m", str(HERE / case.mapping), "--rejects", str(HERE / "rejects.csv")]
    cmd += ["-c", str(HERE / case.config)] if case.config else []
    run = measure(cmd, env, timeout, cwd=HERE)
    size = max((HERE / name).stat().st_size for name in (case.file, case.mapping, case.config) if name)
    shown = f"{size / MB:.1f} MB" if size >= 100_000 else f"{size / 1000:.1f} kB"
    ok = verdict(run)
    line = first_line(run).replace(str(HERE) + "/", "")
    print(
        f"{case.name:44} {shown:>9} {run.code:>4} {run.rss_kib / 1024:>5.0f} MiB {run.wall:>6.1f}s  {ok:7}  {line[:160]}",
        flush=True,
    )
    return 0 if ok == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())

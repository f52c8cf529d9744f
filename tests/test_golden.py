"""Golden payloads: every sample mapping sends exactly the records in tests/data/golden/.

For each (export, mapping) pair of `t360 demo` (every mapping in t360cli/sample_data), the
library pipeline runs as `t360 validate`/`upload` do (default batch settings) and the exact
bodies it would POST, its counts, its control totals and its rejected lines are compared
with tests/data/golden/<mapping>.json. Bodies are compact JSON whose key order is the
record's, so the golden fixes every byte sent.

Regenerate after a deliberate change, then review the diff by hand:

    T360_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from t360cli.batching import Batcher
from t360cli.demo import DEMO_FILES, SAMPLES
from t360cli.mapping import load_mapping
from t360cli.pipeline import Pipeline, open_inputs
from t360cli.report import RejectsWriter

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
UPDATE = os.environ.get("T360_UPDATE_GOLDEN") == "1"
COUNTS = (
    "rows_read",
    "rows_valid",
    "rows_rejected",
    "rows_filtered",
    "rows_duplicate",
    "records_valid",
    "unattributed_customers",
)

# Goldens that hold the SPEC's answer while the code still gives another; the test is an
# expected failure until the code is fixed (strict: it fails once the bug is gone, as a
# reminder to drop the entry). Regeneration leaves these goldens alone.
KNOWN_BUGS: dict[str, str] = {}  # mapping -> why its golden is expected to fail (strict xfail)


def run(data: Path, mapping: Path, tmp: Path, chunk_rows: int | None = None) -> dict[str, Any]:
    """What one sample sends and reports, in the golden file's layout."""
    m = load_mapping(mapping)
    inputs = open_inputs(m, [str(data)])
    rejects = RejectsWriter(tmp / f"{mapping.stem}.rejects.csv", inputs.columns)
    pipe = Pipeline(m, inputs, rejects, **({"chunk_rows": chunk_rows} if chunk_rows else {}))
    batcher = Batcher(500, 1_000_000)  # Settings' defaults: batch_size, max_batch_bytes
    bodies = [b.body for piece in pipe.pieces() for b in batcher.add(piece)]
    bodies += [b.body for b in batcher.flush()]
    written = rejects.close()
    rejected: list[list[Any]] = []
    if written:
        with open(written, newline="", encoding="utf-8") as f:
            rejected = [[int(r["source_line"]), r["reason"]] for r in csv.DictReader(f)]
    counts = dataclasses.asdict(pipe.counts)
    return {
        "file": data.name,
        "mapping": mapping.name,
        "counts": {k: counts[k] for k in COUNTS},
        "totals": pipe.totals.as_json() if m.kind == "activities" else None,
        "rejects": rejected,
        "bodies": [orjson.loads(b) for b in bodies],
        "raw": [bytes(b) for b in bodies],
    }


def dump(golden: dict[str, Any]) -> str:
    """The golden as reviewable JSON: one record or reject per line."""

    def rows(items: list[Any], indent: str) -> str:
        inner = (",\n" + indent + " ").join(json.dumps(i, ensure_ascii=False) for i in items)
        return f"[\n{indent} {inner}\n{indent}]" if items else "[]"

    parts = [f'"{k}": {json.dumps(golden[k], ensure_ascii=False)}' for k in ("file", "mapping", "counts", "totals")]
    parts.append(f'"rejects": {rows(golden["rejects"], " ")}')
    parts.append('"bodies": [' + ", ".join(rows(b, "  ") for b in golden["bodies"]) + "]")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def golden_path(mapping: str) -> Path:
    return GOLDEN / f"{Path(mapping).stem}.json"


def test_every_sample_mapping_has_a_golden() -> None:
    listed = {mapping for _, mapping in DEMO_FILES}
    on_disk = {p.name for p in SAMPLES.glob("*.yaml") if p.name != "nightly.yaml"}  # the sample job, not a mapping
    assert on_disk == listed, "every sample mapping must be in demo.DEMO_FILES (and so here)"
    assert {golden_path(m).name for m in listed} <= {p.name for p in GOLDEN.glob("*.json")}


def _case(data: str, mapping: str) -> Any:
    marks = []
    if mapping in KNOWN_BUGS and not UPDATE:
        marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[mapping]))
    return pytest.param(data, mapping, id=mapping, marks=marks)


@pytest.mark.parametrize("data, mapping", [_case(d, m) for d, m in DEMO_FILES])
def test_golden_payloads(data: str, mapping: str, tmp_path: Path) -> None:
    got = run(SAMPLES / data, SAMPLES / mapping, tmp_path)
    raw = got.pop("raw")
    assert raw == [orjson.dumps(body) for body in got["bodies"]], "bodies are compact JSON"
    path = golden_path(mapping)
    if UPDATE:
        if mapping in KNOWN_BUGS:
            pytest.skip(f"not regenerating {path.name}: {KNOWN_BUGS[mapping]}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(got), encoding="utf-8")
        pytest.skip(f"wrote {path}; review it by hand before committing")
    want = json.loads(path.read_text(encoding="utf-8"))
    for key in ("counts", "totals", "rejects"):
        assert got[key] == want[key], key
    assert len(got["bodies"]) == len(want["bodies"])
    for i, (g, w) in enumerate(zip(got["bodies"], want["bodies"], strict=True)):
        assert g == w, f"body {i} differs"
        assert [list(r) for r in g] == [list(r) for r in w], f"body {i}: key order differs"


@pytest.mark.parametrize("data, mapping", DEMO_FILES, ids=[m for _, m in DEMO_FILES])
def test_bodies_do_not_depend_on_chunking(data: str, mapping: str, tmp_path: Path) -> None:
    """Chunks of 4 rows (groups and duplicates spread across chunks) send the same bytes."""
    whole = run(SAMPLES / data, SAMPLES / mapping, tmp_path)
    tiny = run(SAMPLES / data, SAMPLES / mapping, tmp_path, chunk_rows=4)
    assert tiny["raw"] == whole["raw"]
    assert (tiny["counts"], tiny["rejects"]) == (whole["counts"], whole["rejects"])

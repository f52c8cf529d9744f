"""Small helpers shared by the tests: run the pipeline on text inputs."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from t360cli.batching import Batcher
from t360cli.mapping import load_mapping
from t360cli.pipeline import Pipeline, open_inputs
from t360cli.report import RejectsWriter
from t360cli.tally import Counts


@dataclass
class Outcome:
    counts: Counts
    records: list[dict[str, Any]]
    bodies: list[bytes]
    rejects: str | None
    totals: dict[str, Any]
    where_seen: dict[str, list[tuple[str, int]]]


def run_pipeline(
    tmp: Path,
    files: dict[str, str | bytes],
    mapping: str,
    chunk_rows: int = 50_000,
    batch_size: int = 500,
    max_bytes: int = 1_000_000,
    limit: int | None = None,
) -> Outcome:
    names = []
    for name, content in files.items():
        path = tmp / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        names.append(str(path))
    mpath = tmp / "mapping.yaml"
    mpath.write_text(mapping, encoding="utf-8")
    m = load_mapping(mpath)
    inputs = open_inputs(m, names)
    rejects = RejectsWriter(tmp / "rejects.csv", inputs.columns)
    pipe = Pipeline(m, inputs, rejects, limit=limit, chunk_rows=chunk_rows)
    batcher = Batcher(batch_size, max_bytes)
    bodies = [b.body for piece in pipe.pieces() for b in batcher.add(piece)]
    bodies += [b.body for b in batcher.flush()]
    written = rejects.close()
    text = written.read_text(encoding="utf-8").replace(str(tmp) + "/", "") if written else None
    records = [r for body in bodies for r in orjson.loads(body)]
    return Outcome(pipe.counts, records, bodies, text, pipe.totals.as_json(), pipe.where_seen())


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[socketserver.BaseServer]:
    """A stdlib server answering in a thread while the block runs; shut down and joined after."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

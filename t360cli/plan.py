"""Inputs + mapping + settings -> a Plan: everything fixed before the first row is read.

Shared by upload (`plan`) and replay (`plan_from_log`): the progress-log header, the log's
path and the rejects file beside it are computed here and nowhere else.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from t360cli import __version__, readers
from t360cli.batching import Batch, Batcher
from t360cli.config import Settings
from t360cli.errors import UsageError
from t360cli.ledger_view import RunLedger
from t360cli.mapping import Mapping, load_mapping
from t360cli.observer import Observer, estimate_rows
from t360cli.pipeline import Inputs, Pipeline, open_inputs
from t360cli.report import RejectsWriter
from t360cli.urls import host_of

# the header keys a resumed log must share with the run that wrote it
MATCH_KEYS = ("kind", "files", "mapping_sha256", "batch_size", "max_batch_bytes", "host")
LogHeader = dict[str, Any]  # the progress log's first line (JSON), as written by `header()`


@dataclass
class RunOptions:
    """What the user asked for on the command line, beyond Settings."""

    files: list[str]
    mapping: str
    dry_run: bool = False
    limit: int | None = None
    max_rejects: str | None = None
    log: str | None = None
    restart: bool = False
    rejects: str | None = None
    report: str | None = None
    min_rows: int = 0  # --min-rows: fewer valid rows and nothing is sent (exit 3)
    show: int = 0  # validate --show N: the first N valid records as they would be sent


@dataclass(frozen=True)
class Plan:
    """Everything fixed before the first row is read."""

    mapping: Mapping
    inputs: Inputs
    header: LogHeader
    log_path: Path
    rejects_path: Path

    @property
    def file_names(self) -> list[str]:
        return [str(path) for path in self.inputs.paths]


def rejects_beside(log_path: Path) -> Path:
    """`runs/name-fingerprint.jsonl` -> `runs/name-fingerprint.rejects.csv`."""
    stem = log_path.with_suffix("")
    return stem.with_name(stem.name + ".rejects.csv")


def header(mapping: Mapping, mapping_path: Path, inputs: Inputs, settings: Settings, limit: int | None) -> LogHeader:
    """The progress log's header: version, kind, inputs with their hashes, batching, host."""
    files = [
        {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": readers.file_sha256(path)}
        for path in inputs.paths
    ]
    host = host_of(settings.base_url)
    base = urlsplit(settings.base_url or "")
    return {
        "t360": __version__,
        "kind": mapping.kind,
        "files": files,
        "mapping": str(mapping_path.resolve()),
        "mapping_sha256": mapping.sha256,
        "batch_size": settings.batch_size,
        "max_batch_bytes": settings.max_batch_bytes,
        "host": host,
        "base_url": f"{base.scheme}://{host}{base.path}" if host else None,
        "limit": limit,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "started_ms": time.time_ns() // 1_000_000,  # the ledger as this log sees it (SPEC 13)
        "command": command_line(),
        "cwd": os.getcwd(),
    }


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def command_line(argv: list[str] | None = None) -> list[str] | None:
    """The command as typed, for `t360 status` to say how to finish a run (SPEC 10): the
    arguments after `t360` (or `python -m t360cli`); None when t360 is not the program (a
    library call). The API key is never on the command line; a URL's user:password is
    masked all the same."""
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]) if argv else Path()
    if program.name != "t360" and not (program.name == "__main__.py" and program.parent.name == "t360cli"):
        return None
    return ["t360", *(_USERINFO.sub("***@", arg) for arg in argv[1:])]


DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".xlsx", ".xls", ".jsonl", ".ndjson", ".json", ".parquet", ".gz")


def check_not_swapped(files: list[str], mapping: str) -> None:
    """FILE and -m given the wrong way round: say so, rather than that the export is not
    UTF-8 YAML (SPEC 12)."""
    looks_like_data = Path(mapping).name.lower().endswith(DATA_SUFFIXES)
    yaml_files = [name for name in files if Path(name).suffix.lower() in (".yaml", ".yml")]
    if looks_like_data or yaml_files:
        given = yaml_files[0] if yaml_files else files[0] if files else "?"
        raise UsageError(
            f"the export and the mapping look swapped: {given} is given as the export and {mapping} as the mapping.",
            "Give the export first and the mapping after -m: t360 validate EXPORT -m MAPPING.yaml.",
        )


def plan(opts: RunOptions, settings: Settings) -> Plan:
    """An upload's (or validate's) plan: the log is named after the first input and a fingerprint."""
    check_not_swapped(opts.files, opts.mapping)
    mapping = load_mapping(Path(opts.mapping))
    inputs = open_inputs(mapping, opts.files)
    head = header(mapping, Path(opts.mapping), inputs, settings, opts.limit)
    fingerprint = hashlib.sha256(orjson.dumps([head[key] for key in MATCH_KEYS] + [opts.limit])).hexdigest()[:12]
    name = inputs.paths[0].name.split(".")[0] if inputs.paths else "run"
    log_path = Path(opts.log) if opts.log else Path(settings.state_dir) / "runs" / f"{name}-{fingerprint}.jsonl"
    rejects = Path(opts.rejects) if opts.rejects else rejects_beside(log_path)
    return Plan(mapping, inputs, head, log_path, rejects)


def plan_from_log(log_path: Path, head: LogHeader, mapping: Mapping) -> Plan:
    """A replay's plan: the inputs, mapping and header the log recorded."""
    inputs = open_inputs(mapping, [entry["path"] for entry in head["files"]])
    return Plan(mapping, inputs, head, log_path, rejects_beside(log_path))


def open_pipeline(
    the_plan: Plan, limit: int | None, observer: Observer, verb: str, settings: Settings, ledger: RunLedger | None
) -> tuple[Pipeline, RejectsWriter]:
    """The run's pipeline and its rejects file; the observer is told that reading starts."""
    rejects = RejectsWriter(the_plan.rejects_path, the_plan.inputs.columns, the_plan.file_names)
    agreed = settings.contract
    pipe = Pipeline(
        the_plan.mapping,
        the_plan.inputs,
        rejects,
        limit,
        must_have=agreed.customers_must_have if the_plan.mapping.kind == "customers" else (),
        allowed=agreed.allowed,
        ledger=ledger,
        reject_orphans=agreed.orphans == "reject",
    )
    pipe.on_chunk = observer.progress
    title = f"{verb} {', '.join(the_plan.file_names)}"
    observer.start(title, verb == "validating", partial(estimate_rows, the_plan.inputs.paths))
    return pipe, rejects


def batches(pipe: Pipeline, settings: Settings) -> Iterator[Batch]:
    batcher = Batcher(settings.batch_size, settings.max_batch_bytes)
    for piece in pipe.pieces():
        yield from batcher.add(piece)
    yield from batcher.flush()

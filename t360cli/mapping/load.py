"""Load and check a mapping file (SPEC section 3) into a Mapping.

Everything wrong with a mapping is found here, before any row is read, and reported
all at once with the file, the line and what to change.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Sequence
from pathlib import Path

from t360cli import contract, yamlnodes
from t360cli.convert_common import DECIMAL_MARKS
from t360cli.errors import MappingError
from t360cli.mapping.checker import Checker, did_you_mean
from t360cli.mapping.extensions import parse_aggregate, parse_events
from t360cli.mapping.field import field_list, intended
from t360cli.mapping.spec import FieldSpec, Mapping
from t360cli.readers import SourceOptions
from t360cli.yamlnodes import YMap

FORMATS = ("csv", "tsv", "xlsx", "jsonl", "json", "parquet")
TOP_KEYS = ("kind", "source", "timezone", "output_timezone", "where", "fields", "events", "aggregate")
SOURCE_KEYS = ("format", "delimiter", "encoding", "sheet", "decimal", "thousands", "header_row", "skip_footer")
TAB_NAMES = {"\\t": "\t", "tab": "\t", "TAB": "\t"}


def load_mapping(path: Path) -> Mapping:
    """Read, check and compile a mapping file."""
    tree, raw = yamlnodes.load(path)
    if not isinstance(tree, YMap):
        raise MappingError(f"{path}: a mapping is a YAML map with `kind:` and `fields:`.")
    checker = Checker(path)
    checker.keys(tree, TOP_KEYS, "the mapping")
    if "kind" not in tree:
        checker.stop(tree.line, "`kind:` is missing.", "Add `kind: customers` or `kind: activities`.")
    kind = checker.text(tree, "kind", "kind") or ""
    if kind not in contract.KINDS:
        checker.stop(
            tree.line_of("kind"), f"kind '{kind}' is not customers or activities.{did_you_mean(kind, contract.KINDS)}"
        )
    mapping = Mapping(path=path, kind=kind, sha256=hashlib.sha256(raw).hexdigest(), source=SourceOptions())
    if "source" in tree:
        _source(checker, tree, mapping)
    for key in ("timezone", "output_timezone"):
        zone = checker.zone(tree, key) if key in tree else None
        setattr(mapping, key, zone or "UTC")
    if "where" in tree:
        _where(checker, tree, mapping)
    fields = tree.get("fields")
    if not isinstance(fields, YMap) or not fields:
        if "fields" not in tree and checker.problems:  # most likely a misspelt `fields:`, already noted
            raise checker.error()
        checker.stop(
            tree.line_of("fields"),
            "`fields:` is missing or empty.",
            "List the target fields, e.g. `customerid: {column: Login}`.",
        )
    mapping.fields = field_list(checker, kind, fields)
    named = set(fields)
    if "events" in tree:
        mapping.events = parse_events(checker, tree, mapping)
        named |= {key for item in tree["events"] if isinstance(item, YMap) for key in item}
    named |= {intended(kind, target) for target in named}
    if "aggregate" in tree:
        mapping.aggregate = parse_aggregate(checker, tree, mapping)
    _check_required(checker, tree.line_of("fields"), mapping, named)
    checker.finish()
    return mapping


def _source(checker: Checker, tree: YMap, mapping: Mapping) -> None:
    src = tree["source"]
    if not isinstance(src, YMap):
        checker.note(tree.line_of("source"), "`source:` must be a map (" + ", ".join(SOURCE_KEYS) + ").")
        return
    checker.keys(src, SOURCE_KEYS, "source")
    opts = {key: checker.text(src, key, f"source.{key}") for key in SOURCE_KEYS if key in src}
    fmt, delimiter, encoding, sheet = (opts.get(key) for key in ("format", "delimiter", "encoding", "sheet"))
    if fmt is not None and fmt not in FORMATS:
        checker.note(
            src.line_of("format"),
            f"unknown format '{fmt}'.{did_you_mean(fmt, FORMATS)}",
            f"Formats: {', '.join(FORMATS)}.",
        )
    if delimiter is not None:
        delimiter = TAB_NAMES.get(delimiter, delimiter)
        if len(delimiter) != 1:
            checker.note(src.line_of("delimiter"), "source.delimiter must be one character.", 'Write "\\t" for a tab.')
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            checker.note(src.line_of("encoding"), f"unknown encoding '{encoding}'.", "Use utf-8, cp1252, latin-1...")
    _separators(checker, src, mapping, opts.get("decimal"), opts.get("thousands"))
    mapping.source = SourceOptions(
        format=fmt,
        delimiter=delimiter,
        encoding=encoding or "utf-8",
        sheet=int(sheet) if sheet is not None and sheet.isdigit() else sheet,
        header_row=_whole(checker, src, "header_row", opts.get("header_row"), 1),
        skip_footer=_whole(checker, src, "skip_footer", opts.get("skip_footer"), 0),
    )


def _whole(checker: Checker, src: YMap, key: str, text: str | None, least: int) -> int:
    """A whole-number source option (header_row from 1, skip_footer from 0)."""
    if text is None:
        return least
    if not text.strip().isdigit() or int(text) < least or int(text) > 1_000_000:
        checker.note(src.line_of(key), f"source.{key} must be a whole number from {least} to 1000000, not '{text}'.")
        return least
    return int(text)


def _separators(checker: Checker, src: YMap, mapping: Mapping, decimal: str | None, thousands: str | None) -> None:
    mapping.decimal = decimal or "."
    if mapping.decimal not in DECIMAL_MARKS:
        checker.note(src.line_of("decimal"), f'source.decimal must be "." or ",", not \'{mapping.decimal}\'.')
    if thousands is not None and (len(thousands) != 1 or thousands == mapping.decimal or thousands.isdigit()):
        checker.note(
            src.line_of("thousands"),
            "source.thousands must be one character other than the decimal separator and digits.",
        )
    mapping.thousands = thousands


def _where(checker: Checker, tree: YMap, mapping: Mapping) -> None:
    where = tree["where"]
    if not isinstance(where, YMap) or not where:
        checker.note(
            tree.line_of("where"),
            "`where:` must map a column to the values to keep.",
            "Example: `where: {Status: [Approved, Completed]}`.",
        )
        return
    for column, values in where.items():
        if isinstance(values, YMap):
            checker.note(where.line_of(column), f"where.{column} must be a value or a list of values.")
            continue
        kept = values if isinstance(values, list) else [values]
        if not kept or any(not isinstance(value, str) for value in kept):
            checker.note(where.line_of(column), f"where.{column} must list plain values.")
            continue
        mapping.where[column.strip()] = tuple(value.strip() for value in kept)
        mapping.where_lines[column.strip()] = where.line_of(column)


def _check_required(checker: Checker, fields_line: int, mapping: Mapping, named: set[str]) -> None:
    for required in contract.REQUIRED[mapping.kind]:
        if required not in named:
            checker.note(
                fields_line,
                f"fields: {required} is required for {mapping.kind} and is not mapped.",
                f"Add `{required}: {{column: ...}}` (or value/template).",
            )
    for spec in mapping.all_fields():
        _contract_defaults(checker, mapping.kind, spec)


def _contract_defaults(checker: Checker, kind: str, spec: FieldSpec) -> None:
    """What the guide demands of a field, whatever the mapping says (SPEC 5): the
    required fields, tracking_data's 50 characters, the types of times and Value."""
    if spec.target in contract.REQUIRED[kind]:
        spec.required = True
    if kind == "customers" and spec.target == "tracking_data":
        spec.max_length = min(spec.max_length or contract.TRACKING_DATA_MAX, contract.TRACKING_DATA_MAX)
    wanted = {"regtime": ("datetime", "date"), "createtime": ("datetime", "date"), "Value": ("decimal", "integer")}
    types = wanted.get(spec.target)
    if types and spec.type not in types and kind == ("customers" if spec.target == "regtime" else "activities"):
        checker.note(
            spec.line,
            f"{spec.target} must be typed {' or '.join(types)}, not {spec.type}.",
            "Remove the type to use the default, or pick one of those.",
        )


def check_columns(mapping: Mapping, source_name: str, header: Sequence[str]) -> None:
    """Every column the mapping names must be in the file's header (exactly, after trimming);
    the ones that are not are reported all at once, each with the closest header."""
    present = set(header)
    missing = [(column, line) for column, line in mapping.columns_used().items() if column not in present]
    if not missing:
        return
    columns = f"Its columns are: {', '.join(header[:30])}{' ...' if len(header) > 30 else ''}."
    if len(missing) == 1:
        column, line = missing[0]
        raise MappingError(
            f"{mapping.path}, line {line}: column '{column}' is not in {source_name}.{did_you_mean(column, header)}",
            columns,
        )
    bullets = [
        f"• line {line}: column '{column}' is not in {source_name}.{did_you_mean(column, header)}"
        for column, line in sorted(missing, key=lambda item: item[1])
    ]
    raise MappingError(
        f"{mapping.path} names {len(missing)} columns that are not in {source_name}:\n" + "\n".join(bullets), columns
    )

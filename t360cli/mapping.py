"""Load and check a mapping file (SPEC section 3) into a Mapping.

Everything wrong with a mapping is found here, before any row is read, and reported
with the file, the line and what to change.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t360cli import contract, yamlnodes
from t360cli.errors import MappingError
from t360cli.readers import SourceOptions
from t360cli.yamlnodes import YList, YMap

TYPES = ("string", "decimal", "integer", "datetime", "date", "currency", "country")
FORMATS = ("csv", "tsv", "xlsx", "jsonl", "json", "parquet")
TOP_KEYS = ("kind", "source", "timezone", "output_timezone", "where", "fields", "events", "aggregate")
SOURCE_KEYS = ("format", "delimiter", "encoding", "sheet", "decimal", "thousands")
FIELD_KEYS = ("column", "value", "template", "type", "format", "default", "map", "required", "max_length", "generate")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Template:
    """`fx_{Login}`: literal text and column names, alternating (literals at even places)."""

    parts: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.parts[1::2]


@dataclass
class FieldSpec:
    target: str
    line: int
    column: str | None = None
    value: str | None = None
    template: Template | None = None
    type: str = "string"
    format: str | None = None
    default: str | None = None
    map: dict[str, str] | None = None
    required: bool = False
    max_length: int | None = None
    generate: str | None = None  # "hash": eventid derived from the record's content

    @property
    def columns(self) -> tuple[str, ...]:
        if self.column is not None:
            return (self.column,)
        return self.template.columns if self.template else ()


@dataclass
class Mapping:
    path: Path
    kind: str
    sha256: str
    source: SourceOptions
    decimal: str = "."
    thousands: str | None = None
    timezone: str = "UTC"
    output_timezone: str = "UTC"
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)
    where_lines: dict[str, int] = field(default_factory=dict)
    fields: list[FieldSpec] = field(default_factory=list)
    events: list[list[FieldSpec]] | None = None
    aggregate: Any = None  # aggregate.AggregateSpec, set by aggregate.parse

    @property
    def id_field(self) -> str:
        return contract.ID_FIELD[self.kind]

    def columns_used(self) -> dict[str, int]:
        """Every source column the mapping reads, with the line that names it."""
        used = dict(self.where_lines)
        specs = list(self.fields) + [s for ev in self.events or [] for s in ev]
        for spec in specs:
            for col in spec.columns:
                used.setdefault(col, spec.line)
        return used


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f" Did you mean '{close[0]}'?" if close else ""


class _Checker:
    """Walks the YAML tree; raises MappingError with file and line at the first mistake."""

    def __init__(self, path: Path) -> None:
        self.where = str(path)

    def fail(self, line: int, message: str, hint: str | None = None) -> MappingError:
        return MappingError(f"{self.where}, line {line}: {message}", hint)

    def keys(self, node: YMap, allowed: Sequence[str], what: str) -> None:
        for key in node:
            if key not in allowed:
                raise self.fail(
                    node.line_of(key),
                    f"unknown key '{key}' in {what}.{_suggest(key, allowed)}",
                    f"Allowed: {', '.join(allowed)}.",
                )

    def text(self, node: YMap, key: str, what: str) -> str:
        value = node[key]
        if not isinstance(value, str):
            raise self.fail(node.line_of(key), f"{what} must be a single value, not a list or a map.")
        return value

    def zone(self, node: YMap, key: str) -> str:
        name = self.text(node, key, key)
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.fail(
                node.line_of(key), f"unknown time zone '{name}'.", "Use an IANA name such as Europe/Madrid or UTC."
            ) from None
        return name


def load_mapping(path: Path) -> Mapping:
    """Read, check and compile a mapping file."""
    tree, raw = yamlnodes.load(path)
    ck = _Checker(path)
    if not isinstance(tree, YMap):
        raise MappingError(f"{path}: a mapping is a YAML map with `kind:` and `fields:`.")
    ck.keys(tree, TOP_KEYS, "the mapping")
    if "kind" not in tree:
        raise ck.fail(tree.line, "`kind:` is missing.", "Add `kind: customers` or `kind: activities`.")
    kind = ck.text(tree, "kind", "kind")
    if kind not in contract.KINDS:
        raise ck.fail(
            tree.line_of("kind"), f"kind '{kind}' is not customers or activities.{_suggest(kind, contract.KINDS)}"
        )
    m = Mapping(path=path, kind=kind, sha256=hashlib.sha256(raw).hexdigest(), source=SourceOptions())
    _source(ck, tree, m)
    for key in ("timezone", "output_timezone"):
        if key in tree:
            setattr(m, key, ck.zone(tree, key))
    _where(ck, tree, m)
    if "fields" not in tree or not isinstance(tree["fields"], YMap) or not tree["fields"]:
        raise ck.fail(
            tree.line_of("fields"),
            "`fields:` is missing or empty.",
            "List the target fields, e.g. `customerid: {column: Login}`.",
        )
    m.fields = [_field(ck, kind, tree["fields"], t) for t in tree["fields"]]
    _extensions(ck, tree, m)
    _check_required(ck, tree, m)
    return m


def _source(ck: _Checker, tree: YMap, m: Mapping) -> None:
    if "source" not in tree:
        return
    src = tree["source"]
    if not isinstance(src, YMap):
        raise ck.fail(
            tree.line_of("source"), "`source:` must be a map (format, delimiter, encoding, sheet, decimal, thousands)."
        )
    ck.keys(src, SOURCE_KEYS, "source")
    opts: dict[str, Any] = {}
    for key in SOURCE_KEYS:
        if key in src:
            opts[key] = ck.text(src, key, f"source.{key}")
    if "format" in opts and opts["format"] not in FORMATS:
        raise ck.fail(
            src.line_of("format"),
            f"unknown format '{opts['format']}'.{_suggest(opts['format'], FORMATS)}",
            f"Formats: {', '.join(FORMATS)}.",
        )
    if "delimiter" in opts:
        opts["delimiter"] = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(opts["delimiter"], opts["delimiter"])
        if len(opts["delimiter"]) != 1:
            raise ck.fail(src.line_of("delimiter"), "source.delimiter must be one character.", 'Write "\\t" for a tab.')
    if "encoding" in opts:
        import codecs

        try:
            codecs.lookup(opts["encoding"])
        except LookupError:
            raise ck.fail(
                src.line_of("encoding"), f"unknown encoding '{opts['encoding']}'.", "Use utf-8, cp1252, latin-1..."
            ) from None
    sheet = opts.get("sheet")
    if sheet is not None and sheet.isdigit():
        opts["sheet"] = int(sheet)
    _separators(ck, src, m, opts.pop("decimal", None), opts.pop("thousands", None))
    m.source = SourceOptions(**opts)


def _separators(ck: _Checker, src: YMap, m: Mapping, decimal: str | None, thousands: str | None) -> None:
    m.decimal = decimal or "."
    if m.decimal not in (".", ","):
        raise ck.fail(src.line_of("decimal"), f'source.decimal must be "." or ",", not \'{m.decimal}\'.')
    if thousands is not None and (len(thousands) != 1 or thousands == m.decimal or thousands.isdigit()):
        raise ck.fail(
            src.line_of("thousands"),
            "source.thousands must be one character other than the decimal separator and digits.",
        )
    m.thousands = thousands


def _where(ck: _Checker, tree: YMap, m: Mapping) -> None:
    if "where" not in tree:
        return
    where = tree["where"]
    if not isinstance(where, YMap) or not where:
        raise ck.fail(
            tree.line_of("where"),
            "`where:` must map a column to the values to keep.",
            "Example: `where: {Status: [Approved, Completed]}`.",
        )
    for column, values in where.items():
        if isinstance(values, YMap):
            raise ck.fail(where.line_of(column), f"where.{column} must be a value or a list of values.")
        vals = values if isinstance(values, list) else [values]
        if not vals or any(not isinstance(v, str) for v in vals):
            raise ck.fail(where.line_of(column), f"where.{column} must list plain values.")
        m.where[column.strip()] = tuple(v.strip() for v in vals)
        m.where_lines[column.strip()] = where.line_of(column)


def _target_name(ck: _Checker, kind: str, target: str, line: int) -> None:
    other = "activities" if kind == "customers" else "customers"
    ours, theirs = contract.ID_FIELD[kind], contract.ID_FIELD[other]
    if target == theirs:
        raise ck.fail(
            line,
            f"'{target}' is the {other} spelling; did you mean {ours}?",
            "Track360 spells it customerId for customers and customerid for activities.",
        )
    for name in contract.FIELDS[kind]:
        if target != name and target.lower() == name.lower():
            raise ck.fail(line, f"'{target}': field names are case-sensitive; did you mean {name}?")


def _field(ck: _Checker, kind: str, fields: YMap, target: str, base: FieldSpec | None = None) -> FieldSpec:
    line = fields.line_of(target)
    _target_name(ck, kind, target, line)
    raw = fields[target]
    if isinstance(raw, str):
        raw_map = YMap(column=raw)
        raw_map.line, raw_map.key_lines = line, {}
        raw = raw_map
    if not isinstance(raw, YMap):
        raise ck.fail(line, f"{target}: give a column name or a map such as {{column: Amount, type: decimal}}.")
    ck.keys(raw, FIELD_KEYS, f"field {target}")
    spec = FieldSpec(target=target, line=line, type=contract.DEFAULT_TYPES[kind].get(target, "string"))
    sources = [k for k in ("column", "value", "template", "generate") if k in raw]
    if len(sources) != 1:
        raise ck.fail(
            line, f"{target}: give exactly one of column, value or template (found {len(sources) or 'none'})."
        )
    _field_source(ck, raw, spec, sources[0])
    _field_options(ck, raw, spec)
    return spec


def _field_source(ck: _Checker, raw: YMap, spec: FieldSpec, key: str) -> None:
    text = ck.text(raw, key, f"{spec.target}.{key}")
    if key == "column":
        spec.column = text.strip()
    elif key == "value":
        spec.value = text
    elif key == "generate":
        if text != "hash":
            raise ck.fail(raw.line_of(key), f"{spec.target}: generate must be 'hash', not '{text}'.")
        if spec.target != "eventid":
            raise ck.fail(raw.line_of(key), f"{spec.target}: generate: hash is for eventid only.")
        spec.generate = text
    else:
        pieces = PLACEHOLDER.split(text.replace("{{", "\x00").replace("}}", "\x01"))
        pieces = [p.replace("\x00", "{").replace("\x01", "}") for p in pieces]
        if any("{" in p or "}" in p for p in pieces[0::2]) and text.count("{") != text.count("}"):
            raise ck.fail(
                raw.line_of(key),
                f"{spec.target}: unbalanced braces in template '{text}'.",
                "Write {{ and }} for literal braces.",
            )
        if len(pieces) < 2:
            raise ck.fail(
                raw.line_of(key),
                f"{spec.target}: template '{text}' names no {{Column}}.",
                "Use `value:` for a constant.",
            )
        if any(not c.strip() for c in pieces[1::2]):
            raise ck.fail(raw.line_of(key), f"{spec.target}: empty {{}} in template '{text}'.")
        pieces[1::2] = [c.strip() for c in pieces[1::2]]
        spec.template = Template(tuple(pieces))


def _field_options(ck: _Checker, raw: YMap, spec: FieldSpec) -> None:
    t = spec.target
    if "type" in raw:
        spec.type = ck.text(raw, "type", f"{t}.type")
        if spec.type not in TYPES:
            raise ck.fail(
                raw.line_of("type"),
                f"{t}: unknown type '{spec.type}'.{_suggest(spec.type, TYPES)}",
                f"Types: {', '.join(TYPES)}.",
            )
    if "format" in raw:
        spec.format = ck.text(raw, "format", f"{t}.format")
        if spec.type not in ("datetime", "date"):
            raise ck.fail(
                raw.line_of("format"),
                f"{t}: format applies to datetime and date fields, and this one is {spec.type}.",
                "Add `type: datetime` (or date).",
            )
        from t360cli.convert import check_format

        problem = check_format(spec.format)
        if problem:
            raise ck.fail(
                raw.line_of("format"),
                f"{t}: bad format '{spec.format}': {problem}.",
                "Use strptime codes, e.g. %d.%m.%Y %H:%M.",
            )
    if "default" in raw:
        spec.default = ck.text(raw, "default", f"{t}.default")
    if "map" in raw:
        table = raw["map"]
        if not isinstance(table, YMap) or any(not isinstance(v, str) for v in table.values()):
            raise ck.fail(raw.line_of("map"), f"{t}: map must translate values, e.g. {{CC: credit_card}}.")
        spec.map = {k.strip(): v for k, v in table.items()}
    if "required" in raw:
        flag = ck.text(raw, "required", f"{t}.required").lower()
        if flag not in ("true", "false", "yes", "no"):
            raise ck.fail(raw.line_of("required"), f"{t}: required must be true or false.")
        spec.required = flag in ("true", "yes")
    if "max_length" in raw:
        n = ck.text(raw, "max_length", f"{t}.max_length")
        if not n.isdigit() or int(n) < 1:
            raise ck.fail(raw.line_of("max_length"), f"{t}: max_length must be a whole number of at least 1.")
        spec.max_length = int(n)


def _extensions(ck: _Checker, tree: YMap, m: Mapping) -> None:
    if "events" in tree:
        from t360cli.events import parse_events

        m.events = parse_events(ck, tree, m)
    if "aggregate" in tree:
        from t360cli.aggregate import parse_aggregate

        m.aggregate = parse_aggregate(ck, tree, m)


def _check_required(ck: _Checker, tree: YMap, m: Mapping) -> None:
    named = {s.target for s in m.fields}
    for ev in m.events or []:
        named |= {s.target for s in ev}
    for req in contract.REQUIRED[m.kind]:
        if req not in named:
            raise ck.fail(
                tree.line_of("fields"),
                f"fields: {req} is required for {m.kind} and is not mapped.",
                f"Add `{req}: {{column: ...}}` (or value/template).",
            )
    for spec in list(m.fields) + [s for ev in m.events or [] for s in ev]:
        _contract_rules(ck, m.kind, spec)


def _contract_rules(ck: _Checker, kind: str, spec: FieldSpec) -> None:
    """What the guide demands of a field, whatever the mapping says (SPEC 5)."""
    if spec.target in contract.REQUIRED[kind]:
        spec.required = True
    if kind == "customers" and spec.target == "tracking_data":
        spec.max_length = min(spec.max_length or contract.TRACKING_DATA_MAX, contract.TRACKING_DATA_MAX)
    wanted = {"regtime": ("datetime", "date"), "createtime": ("datetime", "date"), "Value": ("decimal", "integer")}.get(
        spec.target
    )
    if wanted and spec.type not in wanted and kind == ("customers" if spec.target == "regtime" else "activities"):
        raise ck.fail(
            spec.line,
            f"{spec.target} must be typed {' or '.join(wanted)}, not {spec.type}.",
            "Remove the type to use the default, or pick one of those.",
        )


def check_columns(m: Mapping, source_name: str, header: Sequence[str]) -> None:
    """A column the mapping names must be in the file's header (exactly, after trimming)."""
    present = set(header)
    for column, line in m.columns_used().items():
        if column not in present:
            raise MappingError(
                f"{m.path}, line {line}: column '{column}' is not in {source_name}.{_suggest(column, header)}",
                f"Its columns are: {', '.join(header[:30])}{' ...' if len(header) > 30 else ''}.",
            )


def field_list(ck: _Checker, kind: str, node: YMap) -> list[FieldSpec]:
    """Parse a map of target -> spec (used by `events:` entries)."""
    return [_field(ck, kind, node, t) for t in node]


__all__ = ["FieldSpec", "Mapping", "Template", "YList", "check_columns", "field_list", "load_mapping"]

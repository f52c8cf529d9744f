"""One entry of `fields:` (or of an `events:` entry) -> a FieldSpec, every mistake noted."""

from __future__ import annotations

import re

from t360cli import contract
from t360cli.convert import check_format
from t360cli.mapping.checker import Checker, did_you_mean
from t360cli.mapping.spec import FieldSpec, Template
from t360cli.suggest import near_miss
from t360cli.yamlnodes import YMap

TYPES = ("string", "decimal", "integer", "datetime", "date", "currency", "country")
FIELD_KEYS = (
    "column",
    "value",
    "template",
    "type",
    "format",
    "default",
    "map",
    "unmapped",
    "strip",
    "required",
    "max_length",
    "extra",
    "generate",
)
FLAGS = {"true": True, "yes": True, "false": False, "no": False}
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def field_list(checker: Checker, kind: str, node: YMap) -> list[FieldSpec]:
    """Every well-formed field of a map of target -> spec (the others are noted)."""
    specs = (parse_field(checker, kind, node, target) for target in node)
    return [spec for spec in specs if spec is not None]


def intended(kind: str, target: str) -> str:
    """The guide field a target name was meant as: itself, or the field it misspells
    (the other kind's id spelling, another case, a near miss such as `tracking_dta`)."""
    other = "activities" if kind == "customers" else "customers"
    if target == contract.ID_FIELD[other]:
        return contract.ID_FIELD[kind]
    return near_miss(target, contract.GUIDE_FIELDS[kind]) or target


def _target_name(checker: Checker, kind: str, target: str, line: int, extra: bool) -> None:
    other = "activities" if kind == "customers" else "customers"
    ours, theirs = contract.ID_FIELD[kind], contract.ID_FIELD[other]
    if target == theirs:
        checker.note(
            line,
            f"'{target}' is the {other} spelling; did you mean {ours}?",
            "Track360 spells it customerId for customers and customerid for activities.",
        )
        return
    meant = near_miss(target, contract.GUIDE_FIELDS[kind])
    if meant is None or extra:
        return
    if target.lower() == meant.lower():
        checker.note(line, f"'{target}': field names are case-sensitive; did you mean {meant}?")
    else:
        checker.note(
            line,
            f"'{target}' is not a Track360 field of {kind}; did you mean {meant}?",
            "If it is an additional field on purpose, add `extra: true` to it.",
        )


def parse_field(checker: Checker, kind: str, fields: YMap, target: str) -> FieldSpec | None:
    line = fields.line_of(target)
    raw = fields[target]
    extra = isinstance(raw, YMap) and isinstance(raw.get("extra"), str) and FLAGS.get(raw["extra"].lower()) is True
    _target_name(checker, kind, target, line, extra)
    if isinstance(raw, str):
        shorthand = YMap(column=raw)
        shorthand.line, shorthand.key_lines = line, {}
        raw = shorthand
    if not isinstance(raw, YMap):
        checker.note(line, f"{target}: give a column name or a map such as {{column: Amount, type: decimal}}.")
        return None
    problems = len(checker.problems)
    checker.keys(raw, FIELD_KEYS, f"field {target}")
    if len(checker.problems) > problems:  # a misspelt key: what it meant is unknown
        return None
    spec = FieldSpec(target=target, line=line, type=contract.DEFAULT_TYPES[kind].get(target, "string"))
    sources = [key for key in ("column", "value", "template", "generate") if key in raw]
    if len(sources) != 1:
        checker.note(line, f"{target}: give exactly one of column, value or template (found {len(sources) or 'none'}).")
        return None
    _field_source(checker, raw, spec, sources[0])
    _field_options(checker, raw, spec)
    return spec if len(checker.problems) == problems else None


def _field_source(checker: Checker, raw: YMap, spec: FieldSpec, key: str) -> None:
    text = checker.text(raw, key, f"{spec.target}.{key}")
    if text is None:
        return
    if key == "column":
        spec.column = text.strip()
    elif key == "value":
        spec.value = text
    elif key == "generate":
        if text != "hash":
            checker.note(raw.line_of(key), f"{spec.target}: generate must be 'hash', not '{text}'.")
        elif spec.target != "eventid":
            checker.note(raw.line_of(key), f"{spec.target}: generate: hash is for eventid only.")
        spec.generate = text
    else:
        _template(checker, raw.line_of(key), spec, text)


def _template(checker: Checker, line: int, spec: FieldSpec, text: str) -> None:
    pieces = PLACEHOLDER.split(text.replace("{{", "\x00").replace("}}", "\x01"))
    pieces = [piece.replace("\x00", "{").replace("\x01", "}") for piece in pieces]
    if any("{" in piece or "}" in piece for piece in pieces[0::2]) and text.count("{") != text.count("}"):
        checker.note(
            line, f"{spec.target}: unbalanced braces in template '{text}'.", "Write {{ and }} for literal braces."
        )
    elif len(pieces) < 2:
        checker.note(line, f"{spec.target}: template '{text}' names no {{Column}}.", "Use `value:` for a constant.")
    elif any(not column.strip() for column in pieces[1::2]):
        checker.note(line, f"{spec.target}: empty {{}} in template '{text}'.")
    else:
        pieces[1::2] = [column.strip() for column in pieces[1::2]]
        spec.template = Template(tuple(pieces))


def _field_options(checker: Checker, raw: YMap, spec: FieldSpec) -> None:
    target = spec.target
    type_ok = "type" not in raw or _field_type(checker, raw, spec)
    if "format" in raw and type_ok:
        _field_format(checker, raw, spec)
    if "default" in raw:
        spec.default = checker.text(raw, "default", f"{target}.default")
    if "map" in raw:
        table = raw["map"]
        if not isinstance(table, YMap) or any(not isinstance(v, str) for v in table.values()):
            checker.note(raw.line_of("map"), f"{target}: map must translate values, e.g. {{CC: credit_card}}.")
        else:
            spec.map = {key.strip(): value for key, value in table.items()}
    if "unmapped" in raw:
        spec.unmapped = checker.text(raw, "unmapped", f"{target}.unmapped") or "reject"
        if spec.unmapped not in ("reject", "keep") or spec.map is None:
            checker.note(raw.line_of("unmapped"), f"{target}: unmapped is `keep` or `reject`, beside a map:.")
    if "strip" in raw:
        spec.strip = checker.text(raw, "strip", f"{target}.strip")
        if not spec.strip or spec.column is None:
            checker.note(raw.line_of("strip"), f"{target}: strip lists the characters to remove from a column's cells.")
    spec.required = _flag(checker, raw, "required", target)
    spec.extra = _flag(checker, raw, "extra", target)
    if "max_length" in raw:
        number = checker.text(raw, "max_length", f"{target}.max_length") or ""
        if not number.isdigit() or int(number) < 1:
            checker.note(raw.line_of("max_length"), f"{target}: max_length must be a whole number of at least 1.")
        else:
            spec.max_length = int(number)


def _field_type(checker: Checker, raw: YMap, spec: FieldSpec) -> bool:
    name = checker.text(raw, "type", f"{spec.target}.type")
    if name is None:
        return False
    if name not in TYPES:
        checker.note(
            raw.line_of("type"),
            f"{spec.target}: unknown type '{name}'.{did_you_mean(name, TYPES)}",
            f"Types: {', '.join(TYPES)}.",
        )
        return False
    spec.type = name
    return True


def _field_format(checker: Checker, raw: YMap, spec: FieldSpec) -> None:
    text = checker.text(raw, "format", f"{spec.target}.format")
    if text is None:
        return
    spec.format = text
    if spec.type not in ("datetime", "date"):
        checker.note(
            raw.line_of("format"),
            f"{spec.target}: format applies to datetime and date fields, and this one is {spec.type}.",
            "Add `type: datetime` (or date).",
        )
        return
    problem = check_format(text)
    if problem:
        checker.note(
            raw.line_of("format"),
            f"{spec.target}: bad format '{text}': {problem}.",
            "Use strptime codes, e.g. %d.%m.%Y %H:%M.",
        )


def _flag(checker: Checker, raw: YMap, key: str, target: str) -> bool:
    if key not in raw:
        return False
    value = FLAGS.get((checker.text(raw, key, f"{target}.{key}") or "").lower())
    if value is None:
        checker.note(raw.line_of(key), f"{target}: {key} must be true or false.")
    return bool(value)

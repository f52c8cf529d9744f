"""One entry of `fields:` (or of an `events:` entry) -> a FieldSpec, every mistake noted."""

from __future__ import annotations

import re

from t360cli import contract
from t360cli.convert import check_format
from t360cli.mapping.checker import Checker, did_you_mean
from t360cli.mapping.spec import FieldSpec, Template
from t360cli.yamlnodes import YMap

TYPES = ("string", "decimal", "integer", "datetime", "date", "currency", "country")
FIELD_KEYS = ("column", "value", "template", "type", "format", "default", "map", "required", "max_length", "generate")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def field_list(ck: Checker, kind: str, node: YMap) -> list[FieldSpec]:
    """Every well-formed field of a map of target -> spec (the others are noted)."""
    specs = (parse_field(ck, kind, node, target) for target in node)
    return [spec for spec in specs if spec is not None]


def intended(kind: str, target: str) -> str:
    """The guide field a target name was meant as: itself, or the field it misspells
    (the other kind's id spelling, another case)."""
    other = "activities" if kind == "customers" else "customers"
    if target == contract.ID_FIELD[other]:
        return contract.ID_FIELD[kind]
    return next((name for name in contract.FIELDS[kind] if target.lower() == name.lower()), target)


def _target_name(ck: Checker, kind: str, target: str, line: int) -> None:
    other = "activities" if kind == "customers" else "customers"
    ours, theirs = contract.ID_FIELD[kind], contract.ID_FIELD[other]
    if target == theirs:
        ck.note(
            line,
            f"'{target}' is the {other} spelling; did you mean {ours}?",
            "Track360 spells it customerId for customers and customerid for activities.",
        )
        return
    for name in contract.FIELDS[kind]:
        if target != name and target.lower() == name.lower():
            ck.note(line, f"'{target}': field names are case-sensitive; did you mean {name}?")


def parse_field(ck: Checker, kind: str, fields: YMap, target: str) -> FieldSpec | None:
    line = fields.line_of(target)
    _target_name(ck, kind, target, line)
    raw = fields[target]
    if isinstance(raw, str):
        shorthand = YMap(column=raw)
        shorthand.line, shorthand.key_lines = line, {}
        raw = shorthand
    if not isinstance(raw, YMap):
        ck.note(line, f"{target}: give a column name or a map such as {{column: Amount, type: decimal}}.")
        return None
    problems = len(ck.problems)
    ck.keys(raw, FIELD_KEYS, f"field {target}")
    if len(ck.problems) > problems:  # a misspelt key: what it meant is unknown
        return None
    spec = FieldSpec(target=target, line=line, type=contract.DEFAULT_TYPES[kind].get(target, "string"))
    sources = [key for key in ("column", "value", "template", "generate") if key in raw]
    if len(sources) != 1:
        ck.note(line, f"{target}: give exactly one of column, value or template (found {len(sources) or 'none'}).")
        return None
    _field_source(ck, raw, spec, sources[0])
    _field_options(ck, raw, spec)
    return spec if len(ck.problems) == problems else None


def _field_source(ck: Checker, raw: YMap, spec: FieldSpec, key: str) -> None:
    text = ck.text(raw, key, f"{spec.target}.{key}")
    if text is None:
        return
    if key == "column":
        spec.column = text.strip()
    elif key == "value":
        spec.value = text
    elif key == "generate":
        if text != "hash":
            ck.note(raw.line_of(key), f"{spec.target}: generate must be 'hash', not '{text}'.")
        elif spec.target != "eventid":
            ck.note(raw.line_of(key), f"{spec.target}: generate: hash is for eventid only.")
        spec.generate = text
    else:
        _template(ck, raw.line_of(key), spec, text)


def _template(ck: Checker, line: int, spec: FieldSpec, text: str) -> None:
    pieces = PLACEHOLDER.split(text.replace("{{", "\x00").replace("}}", "\x01"))
    pieces = [piece.replace("\x00", "{").replace("\x01", "}") for piece in pieces]
    if any("{" in piece or "}" in piece for piece in pieces[0::2]) and text.count("{") != text.count("}"):
        ck.note(line, f"{spec.target}: unbalanced braces in template '{text}'.", "Write {{ and }} for literal braces.")
    elif len(pieces) < 2:
        ck.note(line, f"{spec.target}: template '{text}' names no {{Column}}.", "Use `value:` for a constant.")
    elif any(not column.strip() for column in pieces[1::2]):
        ck.note(line, f"{spec.target}: empty {{}} in template '{text}'.")
    else:
        pieces[1::2] = [column.strip() for column in pieces[1::2]]
        spec.template = Template(tuple(pieces))


def _field_options(ck: Checker, raw: YMap, spec: FieldSpec) -> None:
    target = spec.target
    type_ok = "type" not in raw or _field_type(ck, raw, spec)
    if "format" in raw and type_ok:
        _field_format(ck, raw, spec)
    if "default" in raw:
        spec.default = ck.text(raw, "default", f"{target}.default")
    if "map" in raw:
        table = raw["map"]
        if not isinstance(table, YMap) or any(not isinstance(v, str) for v in table.values()):
            ck.note(raw.line_of("map"), f"{target}: map must translate values, e.g. {{CC: credit_card}}.")
        else:
            spec.map = {key.strip(): value for key, value in table.items()}
    if "required" in raw:
        flag = (ck.text(raw, "required", f"{target}.required") or "").lower()
        if flag not in ("true", "false", "yes", "no"):
            ck.note(raw.line_of("required"), f"{target}: required must be true or false.")
        spec.required = flag in ("true", "yes")
    if "max_length" in raw:
        number = ck.text(raw, "max_length", f"{target}.max_length") or ""
        if not number.isdigit() or int(number) < 1:
            ck.note(raw.line_of("max_length"), f"{target}: max_length must be a whole number of at least 1.")
        else:
            spec.max_length = int(number)


def _field_type(ck: Checker, raw: YMap, spec: FieldSpec) -> bool:
    name = ck.text(raw, "type", f"{spec.target}.type")
    if name is None:
        return False
    if name not in TYPES:
        ck.note(
            raw.line_of("type"),
            f"{spec.target}: unknown type '{name}'.{did_you_mean(name, TYPES)}",
            f"Types: {', '.join(TYPES)}.",
        )
        return False
    spec.type = name
    return True


def _field_format(ck: Checker, raw: YMap, spec: FieldSpec) -> None:
    text = ck.text(raw, "format", f"{spec.target}.format")
    if text is None:
        return
    spec.format = text
    if spec.type not in ("datetime", "date"):
        ck.note(
            raw.line_of("format"),
            f"{spec.target}: format applies to datetime and date fields, and this one is {spec.type}.",
            "Add `type: datetime` (or date).",
        )
        return
    problem = check_format(text)
    if problem:
        ck.note(
            raw.line_of("format"),
            f"{spec.target}: bad format '{text}': {problem}.",
            "Use strptime codes, e.g. %d.%m.%Y %H:%M.",
        )

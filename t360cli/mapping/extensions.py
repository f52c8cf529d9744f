"""`events:` and `aggregate:` (activities only), checked like the rest of the mapping."""

from __future__ import annotations

from t360cli.mapping.checker import Checker
from t360cli.mapping.field import field_list
from t360cli.mapping.spec import AggregateSpec, EventSpec, Mapping
from t360cli.yamlnodes import YList, YMap


def parse_events(checker: Checker, tree: YMap, mapping: Mapping) -> list[EventSpec]:
    node, line = tree["events"], tree.line_of("events")
    if mapping.kind != "activities":
        checker.note(line, "events: is for activities mappings only.")
        return []
    if not isinstance(node, YList) or not node:
        checker.note(
            line,
            "events: must be a list of event overrides.",
            "Example: - {eventname: {value: Lots}, Value: {column: lots, type: decimal}}",
        )
        return []
    events = []
    for item, item_line in zip(node, node.item_lines, strict=True):
        if not isinstance(item, YMap) or not item:
            checker.note(item_line, "each entry of events: is a map of fields that override `fields:`.")
            continue
        specs = field_list(checker, mapping.kind, item)
        if len(specs) == len(item) and not any(spec.column or spec.template for spec in specs):
            checker.note(
                item_line,
                "this event maps no column, so it could never be skipped when empty.",
                "Give it at least one column, e.g. Value: {column: lots, type: decimal}.",
            )
        events.append(EventSpec(specs, item_line))
    return events


def parse_aggregate(checker: Checker, tree: YMap, mapping: Mapping) -> AggregateSpec | None:
    node, line = tree["aggregate"], tree.line_of("aggregate")
    if mapping.kind != "activities" or mapping.events:
        checker.note(line, "aggregate: is for activities mappings without events:.")
        return None
    if not isinstance(node, YMap):
        checker.note(line, "aggregate: must be a map with by:, sum: and optionally count:.")
        return None
    checker.keys(node, ("by", "sum", "count"), "aggregate")
    problems = len(checker.problems)
    spec = AggregateSpec(_by(checker, node, mapping), _sums(checker, node, mapping), _count(checker, node, mapping))
    if len(checker.problems) > problems:
        return None
    _check_constant_fields(checker, mapping, spec)
    return spec


def _by(checker: Checker, node: YMap, mapping: Mapping) -> list[tuple[str, bool]]:
    mapped = {spec.target: spec for spec in mapping.fields}
    by_raw = node.get("by")
    if not isinstance(by_raw, YList) or not by_raw:
        checker.note(node.line_of("by"), "aggregate.by must list the target fields that form a group.")
        return []
    by = []
    for item, item_line in zip(by_raw, by_raw.item_lines, strict=True):
        date = isinstance(item, YMap)
        name = item.get("date") if isinstance(item, YMap) and list(item) == ["date"] else item
        if not isinstance(name, str) or name not in mapped:
            checker.note(
                item_line,
                f"aggregate.by: '{item}' is not a field of this mapping.",
                "Name target fields from fields:, or {date: createtime}.",
            )
        elif date and mapped[name].type not in ("datetime", "date"):
            checker.note(item_line, f"aggregate.by: {{date: {name}}} needs a datetime or date field.")
        else:
            by.append((name, date))
    return by


def _sums(checker: Checker, node: YMap, mapping: Mapping) -> list[str]:
    mapped = {spec.target: spec for spec in mapping.fields}
    raw = node.get("sum", YList())
    sums = [raw] if isinstance(raw, str) else list(raw)
    for name in sums:
        if name not in mapped or mapped[name].type not in ("decimal", "integer"):
            checker.note(node.line_of("sum"), f"aggregate.sum: '{name}' must be a decimal or integer field.")
    return sums


def _count(checker: Checker, node: YMap, mapping: Mapping) -> str | None:
    count = node.get("count")
    if count is not None and (not isinstance(count, str) or count in {spec.target for spec in mapping.fields}):
        checker.note(node.line_of("count"), "aggregate.count names a new field to hold the number of rows.")
        return None
    return count


def _check_constant_fields(checker: Checker, mapping: Mapping, spec: AggregateSpec) -> None:
    """Any other field would differ inside a group (USD and EUR summed together)."""
    keyed = {name for name, _ in spec.by} | set(spec.sum)
    for field_spec in mapping.fields:
        if field_spec.target in keyed or field_spec.value is not None or field_spec.generate:
            continue
        checker.note(
            field_spec.line,
            f"aggregate: {field_spec.target} can differ between the rows of a group.",
            f"Add {field_spec.target} to aggregate.by, list it in sum:, or make it a value:.",
        )

"""What a mapping file says, as plain data (SPEC 3). `load.py` builds it; every stage reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from t360cli.readers import SourceOptions


@dataclass(frozen=True)
class Template:
    """`fx_{Login}`: literal text and column names, alternating (literals at even places)."""

    parts: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.parts[1::2]


@dataclass
class FieldSpec:
    """One target field and where its value comes from."""

    target: str
    line: int
    column: str | None = None
    value: str | None = None
    template: Template | None = None
    type: str = "string"
    format: str | None = None
    default: str | None = None
    map: dict[str, str] | None = None
    unmapped: str = "reject"  # a value missing from `map`: "reject" it, or "keep" it as it is
    strip: str | None = None  # characters removed from both ends of each cell (after the spaces)
    required: bool = False
    max_length: int | None = None
    generate: str | None = None  # "hash": eventid derived from the record's content
    extra: bool = False  # an additional field on purpose (not a misspelt guide field)

    @property
    def columns(self) -> tuple[str, ...]:
        if self.column is not None:
            return (self.column,)
        return self.template.columns if self.template else ()


@dataclass
class EventSpec:
    """One entry of `events:`: the fields it overrides (the rest come from `fields:`)."""

    fields: list[FieldSpec]
    line: int


@dataclass
class AggregateSpec:
    """`aggregate:`: one record per group of `by` values."""

    by: list[tuple[str, bool]]  # (target field, cut to its date)
    sum: list[str]
    count: str | None = None


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
    events: list[EventSpec] | None = None
    aggregate: AggregateSpec | None = None

    def all_fields(self) -> list[FieldSpec]:
        """`fields:` and then every event's own fields."""
        return list(self.fields) + [spec for event in self.events or [] for spec in event.fields]

    def columns_used(self) -> dict[str, int]:
        """Every source column the mapping reads, with the line that names it."""
        used = dict(self.where_lines)
        for spec in self.all_fields():
            for column in spec.columns:
                used.setdefault(column, spec.line)
        return used

    def decimal_fields(self) -> list[str]:
        """The fields the control totals sum: Value, every decimal field, aggregate sums."""
        names = [spec.target for spec in self.all_fields() if spec.type == "decimal" or spec.target == "Value"]
        if self.aggregate is not None:
            names += list(self.aggregate.sum)
        return list(dict.fromkeys(names))

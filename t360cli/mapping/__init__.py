"""Mapping files (SPEC 3): `spec` holds what a mapping says, `load` reads and checks one."""

from t360cli.mapping.field import FIELD_KEYS, TYPES
from t360cli.mapping.load import FORMATS, SOURCE_KEYS, TOP_KEYS, check_columns, load_mapping
from t360cli.mapping.spec import AggregateSpec, EventSpec, FieldSpec, Mapping, Template

__all__ = [
    "FIELD_KEYS",
    "FORMATS",
    "SOURCE_KEYS",
    "TOP_KEYS",
    "TYPES",
    "AggregateSpec",
    "EventSpec",
    "FieldSpec",
    "Mapping",
    "Template",
    "check_columns",
    "load_mapping",
]

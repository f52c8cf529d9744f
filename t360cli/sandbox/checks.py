"""What the sandbox refuses in a batch body: the guide's required fields and limits, per record."""

from __future__ import annotations

from t360cli.contract import REQUIRED, TRACKING_DATA_MAX


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _missing_or_mistyped(kind: str, record: dict[str, object]) -> str | None:
    """Why a required field of the record is refused, or None."""
    for name in REQUIRED[kind]:
        value = record.get(name)
        if type(value) is str and value:
            continue
        if value is None or value == "":
            other = next((key for key in record if key.lower() == name.lower() and key != name), None)
            hint = f" (found {other!r}: this endpoint spells it {name!r})" if other else ""
            return f"{name} is required{hint}"
        return f"{name} must be a string, got {json_type(value)}"
    return None


def record_error(kind: str, record: object, poison: str | None) -> str | None:
    """Why one record is refused, or None."""
    if type(record) is not dict:
        return f"must be a JSON object, got {json_type(record)}"
    error = _missing_or_mistyped(kind, record)
    if error is not None:
        return error
    tracking_data = record.get("tracking_data")
    if tracking_data is not None:
        if type(tracking_data) is not str:
            return f"tracking_data must be a string, got {json_type(tracking_data)}"
        if len(tracking_data) > TRACKING_DATA_MAX:
            return f"tracking_data: {len(tracking_data)} characters, at most {TRACKING_DATA_MAX}"
    if poison is not None and poison in record.values():
        field = next(key for key, value in record.items() if value == poison)
        return f"refused value {poison!r} in {field}"
    return None


def check_batch(kind: str, records: object, poison: str | None = None) -> str | None:
    """The 400 message for a parsed body, or None if every record is acceptable.

    Records are numbered from 1 (their position in the JSON array); the first bad one is named.
    """
    if type(records) is not list:
        return f"body must be a JSON array of records, got {json_type(records)}"
    for number, record in enumerate(records, 1):
        error = record_error(kind, record, poison)
        if error is not None:
            return f"record {number}: {error}"
    return None

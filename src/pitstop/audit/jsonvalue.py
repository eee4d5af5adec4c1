"""JSON values for audit records, and the one canonical encoding their hashes are taken over."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import TypeAlias

__all__ = ["JsonValue", "canonical", "to_json"]

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None


def to_json(value: object) -> JsonValue:
    """Convert ``value`` to plain JSON data.

    Accepted: ``None``, booleans, integers, finite floats, strings, mappings with string, integer or
    enum keys, lists, tuples, sets (sorted by their canonical encoding), dataclass instances (their
    fields), enums (their value), dates and datetimes (ISO 8601), objects with a pydantic-style
    ``model_dump(mode="json")``. Anything else raises :class:`TypeError` naming the type, instead
    of being logged as an unhelpful ``repr``.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"audit values must be finite numbers, not {value!r}")
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {_key(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((to_json(v) for v in value), key=canonical)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return to_json(dump(mode="json"))
    raise TypeError(f"cannot write a {type(value).__name__} to the audit log")


def _key(key: object) -> str:
    if isinstance(key, Enum):
        key = key.value
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise TypeError(f"audit mapping keys must be strings, not {type(key).__name__}")


def canonical(value: JsonValue) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8 text: one encoding per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)

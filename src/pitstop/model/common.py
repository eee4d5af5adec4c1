"""Shared pieces of the configuration objects: metadata, versions, quantities, selectors."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from pitstop.model.limits import MAX_COUNT, MAX_DURATION, MAX_QUANTITY
from pitstop.model.names import (
    Annotations,
    Labels,
    MetadataName,
    check_label_key,
    check_selector_value,
)
from pitstop.versions import VersionError, parse_version

API_VERSION: Literal["pitstop.dev/v1alpha1"] = "pitstop.dev/v1alpha1"

__all__ = [
    "API_VERSION",
    "Duration",
    "IntOrPercent",
    "LabelSelector",
    "Metadata",
    "Quantity",
    "SpecModel",
    "VersionStr",
    "format_duration",
    "parse_cpu",
    "parse_duration",
    "parse_memory",
    "repeated",
    "requirement_matches",
    "resolve_int_or_percent",
]


class SpecModel(BaseModel):
    """Base of every configuration object: camelCase keys in YAML, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        allow_inf_nan=False,
    )


def repeated(names: Iterable[str]) -> list[str]:
    """The names that occur more than once, sorted (linear: fleets list thousands)."""
    return sorted(n for n, k in Counter(names).items() if k > 1)


def _check_version(text: str) -> str:
    try:
        v = parse_version(text)
    except VersionError as exc:
        raise ValueError(str(exc)) from None
    return str(v)


def _coerce_str(value: Any) -> Any:
    # YAML reads 1.30 as the float 1.3: refuse that rather than guess.
    if isinstance(value, float):
        raise ValueError(
            f"{value!r} was read as a number; quote versions in YAML. Fix: write e.g. "
            "\"1.30.2\""
        )
    return value


VersionStr = Annotated[
    str,
    BeforeValidator(_coerce_str),
    AfterValidator(_check_version),
    Field(json_schema_extra={"pattern": r"^v?\d+\.\d+(\.\d+)?([-~+].*)?$"}),
]

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_SECONDS = MAX_DURATION.total_seconds()
_DURATION_LIMIT = (f"durations run from 0 to {MAX_DURATION.days}d (a year). Fix: write e.g. "
                   "30s, 15m, 2h or 1h30m")


def _bounded(seconds: float, text: object) -> timedelta:
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{text!r} is not a duration pitstop accepts: {_DURATION_LIMIT}")
    if seconds > _MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than the limit: {_DURATION_LIMIT}")
    return timedelta(seconds=seconds)


def parse_duration(text: str | int | float) -> timedelta:
    """Parse Go-style durations (``90s``, ``1h30m``, ``2d``); a bare number means seconds.
    Negative durations and durations over :data:`~pitstop.model.limits.MAX_DURATION` are
    refused (ValueError)."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration. Fix: write e.g. 30s, 15m, 2h or 1h30m")
    if isinstance(text, int):
        if not -1 <= text <= _MAX_SECONDS:  # keep float() from overflowing on huge integers
            return _bounded(-1.0 if text < 0 else _MAX_SECONDS + 1, text)
        return _bounded(float(text), text)
    if isinstance(text, float):
        return _bounded(text, text)
    s = text.strip()
    if not s:
        raise ValueError("empty duration. Fix: write e.g. 30s, 15m, 2h or 1h30m")
    if len(s) > 64:
        raise ValueError(f"{s[:20]!r}... is not a duration (longer than 64 characters). "
                         "Fix: write e.g. 30s, 15m, 2h, 1h30m or 2d")
    if s.replace(".", "", 1).isdigit():
        return _bounded(float(s), text)
    if s.startswith("-") and s[1:].replace(".", "", 1).isdigit():
        return _bounded(-1.0, text)
    pos = 0
    total = 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNIT_SECONDS[m[2]]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"{_short(text)} is not a duration. Fix: write e.g. 30s, 15m, 2h, "
                         "1h30m or 2d")
    return _bounded(total, text)


def format_duration(d: timedelta) -> str:
    secs = int(d.total_seconds())
    if secs == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            parts.append(f"{secs // size}{unit}")
            secs %= size
    return "".join(parts)


def _to_duration(value: Any) -> Any:
    if isinstance(value, str) and value.strip().startswith(("P", "-P")):
        return value  # ISO 8601 (how durations are written back to JSON): pydantic parses it
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_duration(value)
    return value


def _duration_bounds(value: timedelta) -> timedelta:
    return _bounded(value.total_seconds(), value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    AfterValidator(_duration_bounds),
    Field(json_schema_extra={"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"}),
]


_PERCENT_RE = re.compile(r"^(\d{1,3})%$")
_COUNT_RE = re.compile(r"^\d{1,10}$")
_INT_OR_PERCENT = (f"expected a count from 0 to {MAX_COUNT} (int32, as Kubernetes) or a "
                   "percentage from \"0%\" to \"100%\"")


def _check_int_or_percent(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(_INT_OR_PERCENT)
    if isinstance(value, int):
        if not 0 <= value <= MAX_COUNT:
            raise ValueError(f"{_INT_OR_PERCENT}. Fix: write e.g. 1 or \"25%\"")
        return value
    if isinstance(value, str):
        m = _PERCENT_RE.match(value.strip())
        if m and int(m[1]) <= 100:
            return value.strip()
        if _COUNT_RE.match(value.strip()) and int(value.strip()) <= MAX_COUNT:
            return int(value.strip())
    shown = value if not isinstance(value, str) or len(value) <= 40 else value[:37] + "..."
    raise ValueError(f"{shown!r}: {_INT_OR_PERCENT}. Fix: write e.g. 1 or \"25%\"")


IntOrPercent = Annotated[int | str, BeforeValidator(_check_int_or_percent)]


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes semantics: percentages of ``total``, rounded up for surge and budgets that
    allow disruption, down for availability floors."""
    if isinstance(value, int):
        return value
    pct = int(value.rstrip("%"))
    whole, rem = divmod(pct * total, 100)
    return whole + (1 if round_up and rem else 0)


_CPU_RE = re.compile(r"^(\d{1,30}(?:\.\d{1,30})?)(m?)$")
_MEM_RE = re.compile(r"^(\d{1,30}(?:\.\d{1,30})?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$")
_MEM_UNITS = {
    "": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def _quantity_text(value: str | int | float) -> str:
    if isinstance(value, bool):
        return "not a quantity"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "not finite"
    if isinstance(value, int):
        return str(value) if abs(value) <= MAX_QUANTITY * 1000 else "too large"
    return value.strip()


def parse_cpu(value: str | int | float) -> int:
    """CPU quantity to millicores (``"500m"`` → 500, ``2`` → 2000), at most
    :data:`~pitstop.model.limits.MAX_QUANTITY` millicores."""
    m = _CPU_RE.match(_quantity_text(value))
    if m is None:
        raise ValueError(f"{_short(value)} is not a CPU quantity (cores or millicores, at most "
                         "30 digits). Fix: write e.g. 500m or 2")
    millis = Decimal(m[1]) if m[2] else Decimal(m[1]) * 1000
    if millis > MAX_QUANTITY:
        raise ValueError(f"{_short(value)} is more CPU than Kubernetes can express (at most "
                         f"{MAX_QUANTITY} millicores, int64). Fix: write e.g. 64 or 15650m")
    return int(millis) if m[2] else int(millis.to_integral_value(ROUND_HALF_EVEN))


def parse_memory(value: str | int | float) -> int:
    """Memory quantity to bytes (``"512Mi"``, ``"1G"``, ``1073741824``), at most
    :data:`~pitstop.model.limits.MAX_QUANTITY` bytes."""
    m = _MEM_RE.match(_quantity_text(value))
    if m is None:
        raise ValueError(f"{_short(value)} is not a memory quantity (bytes with an SI or binary "
                         "suffix, at most 30 digits). Fix: write e.g. 512Mi or 4Gi")
    size = Decimal(m[1]) * _MEM_UNITS[m[2] or ""]
    if size > MAX_QUANTITY:
        raise ValueError(f"{_short(value)} is more memory than Kubernetes can express (at most "
                         f"{MAX_QUANTITY} bytes, int64). Fix: write e.g. 64Gi")
    return int(size)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Quantity(SpecModel):
    """Resources as Kubernetes writes them. ``cpu`` in cores or millicores, ``memory`` in bytes
    with SI or binary suffixes, ``pods`` a count."""

    cpu: str | int | float | None = None
    memory: str | int | None = None
    pods: int | None = Field(default=None, ge=0, le=MAX_COUNT)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str | int | float | None) -> str | int | float | None:
        if value is not None:
            parse_cpu(value)
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_memory(value)
        return value

    @property
    def millicpu(self) -> int:
        return 0 if self.cpu is None else parse_cpu(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return 0 if self.memory is None else parse_memory(self.memory)


class Metadata(SpecModel):
    name: MetadataName
    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)


class LabelSelector(SpecModel):
    """Kubernetes-style label selector. An empty selector selects everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list)

    @field_validator("match_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, v in value.items():
            check_label_key(key)
            check_selector_value(key, v)
        return value

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(expr.matches(labels) for expr in self.match_expressions)


class SelectorRequirement(SpecModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_label_key(value)

    @model_validator(mode="after")
    def _values(self) -> SelectorRequirement:
        for v in self.values:
            check_selector_value(self.key, v)
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs values (as Kubernetes requires). "
                             "Fix: list the values, e.g. values: [eu-west]")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values (as Kubernetes "
                             "requires). Fix: remove values")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        return requirement_matches(self.key, self.operator, self.values, labels)


def requirement_matches(key: str, operator: str, values: Sequence[str],
                        labels: Mapping[str, str]) -> bool:
    """One matchExpressions requirement against a set of labels, as Kubernetes reads it."""
    present = key in labels
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    raise ValueError(f"unknown label selector operator {operator!r}")


LabelSelector.model_rebuild()

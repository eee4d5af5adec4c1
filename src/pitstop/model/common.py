"""Shared pieces of the configuration objects: metadata, versions, quantities, selectors."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

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
            f"{value!r} was read as a number; quote versions in YAML, e.g. \"1.30.2\""
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


def parse_duration(text: str | int | float) -> timedelta:
    """Parse Go-style durations (``90s``, ``1h30m``, ``2d``); a bare number means seconds."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    s = text.strip()
    if not s:
        raise ValueError("empty duration; write e.g. 30s, 15m, 2h or 1h30m")
    if s.replace(".", "", 1).isdigit():
        return timedelta(seconds=float(s))
    pos = 0
    total = 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m[1]) * _UNIT_SECONDS[m[2]]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 15m, 2h, 1h30m or 2d")
    return timedelta(seconds=total)


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


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    Field(json_schema_extra={"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"}),
]


_PERCENT_RE = re.compile(r"^(\d+)%$")


def _check_int_or_percent(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a count such as 2 or a percentage such as \"25%\"")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if isinstance(value, str):
        m = _PERCENT_RE.match(value.strip())
        if m and int(m[1]) <= 100:
            return value.strip()
        if value.strip().isdigit():
            return int(value.strip())
    raise ValueError(f"{value!r}: expected a count such as 2 or a percentage such as \"25%\"")


IntOrPercent = Annotated[int | str, BeforeValidator(_check_int_or_percent)]


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes semantics: percentages of ``total``, rounded up for surge and budgets that
    allow disruption, down for availability floors."""
    if isinstance(value, int):
        return value
    pct = int(value.rstrip("%"))
    whole, rem = divmod(pct * total, 100)
    return whole + (1 if round_up and rem else 0)


_CPU_RE = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")
_MEM_RE = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$")
_MEM_UNITS = {
    "": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_cpu(value: str | int | float) -> int:
    """CPU quantity to millicores (``"500m"`` → 500, ``2`` → 2000)."""
    m = _CPU_RE.match(str(value).strip())
    if m is None:
        raise ValueError(f"{value!r} is not a CPU quantity; write e.g. 500m or 2")
    return int(float(m[1])) if m[2] else round(float(m[1]) * 1000)


def parse_memory(value: str | int | float) -> int:
    """Memory quantity to bytes (``"512Mi"``, ``"1G"``, ``1073741824``)."""
    m = _MEM_RE.match(str(value).strip())
    if m is None:
        raise ValueError(f"{value!r} is not a memory quantity; write e.g. 512Mi or 4Gi")
    return int(float(m[1]) * _MEM_UNITS[m[2] or ""])


class Quantity(SpecModel):
    """Resources as Kubernetes writes them. ``cpu`` in cores or millicores, ``memory`` in bytes
    with SI or binary suffixes, ``pods`` a count."""

    cpu: str | int | float | None = None
    memory: str | int | None = None
    pods: int | None = Field(default=None, ge=0)

    def model_post_init(self, _context: Any) -> None:
        if self.cpu is not None:
            parse_cpu(self.cpu)
        if self.memory is not None:
            parse_memory(self.memory)

    @property
    def millicpu(self) -> int:
        return 0 if self.cpu is None else parse_cpu(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return 0 if self.memory is None else parse_memory(self.memory)


class Metadata(SpecModel):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class LabelSelector(SpecModel):
    """Kubernetes-style label selector. An empty selector selects everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        return all(expr.matches(labels) for expr in self.match_expressions)


class SelectorRequirement(SpecModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

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

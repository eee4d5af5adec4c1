"""The telemetry seam: what gates read from a metrics system (Prometheus, or the twin's series).

A :class:`MetricSource` answers three questions about one cluster — the value of a query now
(:meth:`~MetricSource.instant`), its series over a window (:meth:`~MetricSource.range`), and the
alerts firing now (:meth:`~MetricSource.alerts`). A query is a :class:`MetricQuery`: the PromQL
a real Prometheus evaluates, and — when it was made from a built-in template — the template's
name and the values it was filled with, which is what the twin answers (the twin has no PromQL
engine; it produces the series of the signals the templates name).

Rules, as for the backend:

* values are plain frozen data; a source keeps no state a resumed run would miss;
* a query that could not be made or evaluated (connection refused, a PromQL syntax error, an
  answer that is not a vector) raises :class:`MetricQueryError` — the gate reports Error (the
  check broke), never Failed; an empty answer is a value (``()``), judged as the gate says;
* every call is quick and bounded by the source's own timeout.

Where one comes from: :func:`metric_source` — a backend's optional ``metrics`` attribute (the
twin is its own source; the command line composes a Prometheus source beside a real backend
from the fleet's per-cluster endpoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from pitstop.errors import BackendError

__all__ = [
    "FiringAlert",
    "MetricQuery",
    "MetricQueryError",
    "MetricSource",
    "Sample",
    "Series",
    "metric_source",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


class MetricQueryError(BackendError):
    """A query that could not be made or evaluated: the gate that asked reports Error."""


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One query. ``promql`` is what Prometheus evaluates. ``template`` names the built-in
    template it was filled from (None for a policy's own PromQL) and ``fills`` the values it
    was filled with (``cluster``, ``nodes`` as a regex alternation, ``canary``, ``baseline``
    …), so a source without PromQL (the twin) can answer it by name."""

    promql: str
    template: str | None = None
    fills: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector: its labels and its value at the query's time."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """One element of a range answer: its labels and its (time, value) points, oldest first."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """An alert in state ``firing`` (pending alerts are not reported) since ``active_at``
    (seconds since the epoch, or None when the source does not say)."""

    name: str
    labels: Mapping[str, str]
    active_at: float | None = None


@runtime_checkable
class MetricSource(Protocol):
    """Reads telemetry of the fleet's clusters (see the module docstring for the rules)."""

    @property
    def name(self) -> str:
        """What it reads from, for messages: ``prometheus https://… (cluster c1)``, ``the
        twin's series``."""
        ...

    def instant(self, cluster: str, query: MetricQuery, at: float) -> tuple[Sample, ...]: ...

    def range(self, cluster: str, query: MetricQuery, start: float, end: float,
              step_s: float) -> tuple[Series, ...]: ...

    def alerts(self, cluster: str) -> tuple[FiringAlert, ...]: ...


def metric_source(backend: object) -> MetricSource | None:
    """The backend's metric source (its optional ``metrics`` attribute), or None when it has
    none: gates that read telemetry then report Error, naming what to configure."""
    source = getattr(backend, "metrics", None)
    return source if isinstance(source, MetricSource) else None

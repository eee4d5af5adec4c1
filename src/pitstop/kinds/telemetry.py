"""Telemetry beside a real backend: the one place a run's backend gets its ``metrics``.

:class:`WithTelemetry` wraps a backend kind. When the fleet gives clusters of the run a
Prometheus endpoint (``spec.clusters[].telemetry.prometheus``), :meth:`~WithTelemetry.prepare`
checks the token and CA files exist and are readable (a missing one refuses the run, exit 2,
naming the file and field), records the endpoints under ``telemetry`` in the run's backend
record, and gives the backend made from it a :class:`~pitstop.telemetry.PrometheusSource` as
its ``metrics`` attribute; :meth:`~WithTelemetry.reopen` does the same from the record. A
fleet without endpoints changes nothing (gates that need metrics then report Error, naming
what to configure). The twin is its own metric source and is not wrapped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.backend import Backend
from pitstop.errors import ConfigError, ConfigProblem
from pitstop.kinds.api import BackendKind, Prepared, RunOptions
from pitstop.telemetry import PrometheusEndpoint, source_from_record

if TYPE_CHECKING:
    from pitstop.config import LoadedConfig
    from pitstop.executor.run import RunDir
    from pitstop.planner import Plan

__all__ = ["WithTelemetry", "attach_metrics", "telemetry_record"]


def telemetry_record(cfg: LoadedConfig, clusters: set[str]) -> dict[str, Any]:
    """The Prometheus endpoints of ``clusters`` as a record (cluster → endpoint), each file
    checked; :class:`ConfigError` names every one that is missing or unreadable."""
    if cfg.fleet is None:
        return {}
    source = next((f for k, f in cfg.sources.items() if k.startswith("Fleet/")), "-f")
    out: dict[str, Any] = {}
    problems = []
    for i, c in enumerate(cfg.fleet.spec.clusters):
        prom = c.telemetry.prometheus if c.telemetry is not None else None
        if prom is None or c.name not in clusters:
            continue
        for key, path in (("bearerTokenFile", prom.bearer_token_file),
                          ("caFile", prom.ca_file)):
            if path is not None and not (Path(path).is_file() and os.access(path, os.R_OK)):
                problems.append(ConfigProblem(
                    source, None, f"spec.clusters[{i}].telemetry.prometheus.{key}",
                    f"{path}: no readable file there.", "give the path of an existing file "
                    "(absolute, or relative to where pitstop runs)."))
        out[c.name] = PrometheusEndpoint(
            prom.url, str(Path(prom.bearer_token_file).resolve()) if prom.bearer_token_file
            else None, str(Path(prom.ca_file).resolve()) if prom.ca_file else None,
            prom.timeout.total_seconds()).to_record()
    if problems:
        raise ConfigError(problems)
    return out


def attach_metrics(backend: Backend, record: dict[str, Any] | None) -> Backend:
    """``backend`` with a Prometheus source as its ``metrics`` when ``record`` names
    endpoints."""
    source = source_from_record(record)
    if source is not None:
        backend.metrics = source  # type: ignore[attr-defined]
    return backend


class WithTelemetry:
    """A backend kind whose backends read the fleet's Prometheus endpoints (module docstring)."""

    def __init__(self, inner: BackendKind) -> None:
        self.inner = inner
        self.name = inner.name
        self.help = inner.help

    def prepare(self, cfg: LoadedConfig, plan: Plan, options: RunOptions) -> Prepared:
        telemetry = telemetry_record(cfg, {s.cluster for s in plan.steps})
        prepared = self.inner.prepare(cfg, plan, options)
        if not telemetry:
            return prepared
        make = prepared.make
        return Prepared({**prepared.record, "telemetry": telemetry},
                        lambda run_dir: attach_metrics(make(run_dir), telemetry),
                        prepared.acts_on)

    def reopen(self, run: RunDir) -> Backend:
        return attach_metrics(self.inner.reopen(run), run.backend.get("telemetry"))

    def describe(self, record: dict[str, Any]) -> str:
        return self.inner.describe(record)

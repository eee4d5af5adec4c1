"""Telemetry sources over the network: :class:`~pitstop.telemetry.prometheus.PrometheusSource`,
the :class:`~pitstop.backend.metrics.MetricSource` of real clusters (the Prometheus HTTP API).

This package does I/O (HTTP through ``httpx``, the only place pitstop uses it); the gates and
the executor reach it only through the :mod:`pitstop.backend.metrics` seam.
"""

from pitstop.telemetry.prometheus import PrometheusEndpoint, PrometheusSource, source_from_record

__all__ = ["PrometheusEndpoint", "PrometheusSource", "source_from_record"]

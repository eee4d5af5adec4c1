"""pitstop's Prometheus metrics, in a registry of their own (never the process-global one),
and the HTTP ``/metrics`` endpoint that serves them (docs/telemetry.md#metrics)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics", "MetricsServer", "parse_address"]

# seconds on the backend's clock: a node job drains for minutes, a step can take hours
_STEP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
_JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.runs = Gauge("pitstop_runs", "Runs this process carries out, by their status.",
                          ["status"], registry=r)
        self.step_duration = Histogram(
            "pitstop_step_duration_seconds", "How long a plan step took, from its start to "
            "its gates' verdict, on the backend's clock.", ["action", "outcome"],
            buckets=_STEP_BUCKETS, registry=r)
        self.node_job_duration = Histogram(
            "pitstop_node_job_duration_seconds", "How long one node job (cordon, drain, "
            "upgrade, uncordon) took, on the backend's clock.", ["outcome"],
            buckets=_JOB_BUCKETS, registry=r)
        self.evictions = Counter("pitstop_evictions", "Eviction calls by the API's answer "
                                 "(evicted, gone, budget-exhausted, multiple-pdbs, ...).",
                                 ["answer"], registry=r)
        self.drain_stall = Counter("pitstop_drain_stall_seconds", "Seconds drains waited on "
                                   "a PodDisruptionBudget (per node job, from the first "
                                   "refused eviction until the refused pods were accepted).",
                                   registry=r)
        self.gate_verdicts = Counter("pitstop_gate_verdicts", "Gate verdicts by gate and "
                                     "verdict (passed, inconclusive, failed, error).",
                                     ["gate", "verdict"], registry=r)
        self.rollbacks = Counter("pitstop_rollbacks", "Waves rolled back.", registry=r)
        self.restore_duration = Histogram(
            "pitstop_restore_duration_seconds", "From a failed gate to its wave being back "
            "at its known-good versions, on the backend's clock.", buckets=_STEP_BUCKETS,
            registry=r)
        self.backend_calls = Counter("pitstop_backend_calls", "Calls into the backend, by "
                                     "method and result (ok, error).", ["method", "result"],
                                     registry=r)
        self._status: str | None = None
        self._lock = threading.Lock()

    def run_status(self, status: str) -> None:
        """The run moved to ``status``: one run fewer in the old status, one more in it."""
        with self._lock:
            if self._status is not None:
                self.runs.labels(status=self._status).dec()
            self.runs.labels(status=status).inc()
            self._status = status


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (loopback) → (host, port); ValueError says what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"'{text}' is no HOST:PORT or PORT (a port is 0-65535)")
    return host, int(port_text)


@dataclass
class MetricsServer:
    """``/metrics`` on ``host:port`` in a daemon thread, until :meth:`close`."""

    metrics: Metrics
    host: str
    port: int
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> str:
        server, thread = start_http_server(self.port, addr=self.host,
                                           registry=self.metrics.registry)
        self._server, self._thread = server, thread
        bound = server.server_address[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{bound}/metrics"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

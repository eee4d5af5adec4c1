"""A telemetry session for one run carried out by this process: OpenTelemetry spans exported
over OTLP (HTTP/protobuf), Prometheus metrics served on ``/metrics``, and JSON log lines — each
part only when asked for (docs/telemetry.md).

One trace per run: the trace id is derived from the run id, so ``apply`` and every later
``resume`` of the same run add their spans to the same trace. Every span carries
``pitstop.run_id``. The exporter is flushed when the session closes, whatever way the run
ended (completed, paused, rolled back, an error).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pitstop.observe.api import NO_SPAN, Attr, Span
from pitstop.observe.metrics import Metrics, MetricsServer, parse_address

__all__ = ["LOG_FORMATS", "Session", "TelemetryOptions", "run_trace_id"]

LOG_FORMATS = ("text", "json")
RUN_ID = "pitstop.run_id"


@dataclass(frozen=True)
class TelemetryOptions:
    """What the command line asked for. ``otlp_endpoint``: the OTLP/HTTP base URL (``/v1/traces``
    is added) — None reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, and no tracing when neither is
    set. ``metrics_address``: HOST:PORT or PORT (loopback) for ``/metrics``, None for none;
    ``metrics_linger_s``: how long ``/metrics`` stays up after the run ended."""

    otlp_endpoint: str | None = None
    metrics_address: str | None = None
    metrics_linger_s: float = 0.0
    log_format: str = "text"

    @property
    def wanted(self) -> bool:
        """Anything asked for at all (else the run goes on with no session)."""
        return (self.tracing or self.metrics_address is not None or self.log_format == "json")

    @property
    def tracing(self) -> bool:
        return bool(self.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def run_trace_id(run_id: str) -> int:
    """The run's trace id: 128 bits of SHA-256 of the run id (never 0)."""
    return int(hashlib.sha256(run_id.encode()).hexdigest()[:32], 16) or 1


class _RunIds(IdGenerator):
    """Every root span of the session in the run's trace; span ids at random."""

    def __init__(self, trace_id: int) -> None:
        self._trace_id = trace_id
        self._random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        return self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        return self._trace_id


def _traces_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class _OtelSpan:
    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def set(self, key: str, value: Attr) -> None:
        self.span.set_attribute(key, value)

    def fail(self, message: str) -> None:
        self.span.set_status(trace.Status(trace.StatusCode.ERROR, message[:500]))

    def end(self) -> None:
        self.span.end()




class Session:
    """The :class:`~pitstop.observe.api.Telemetry` of one run, with its exporters."""

    def __init__(self, run_id: str, options: TelemetryOptions,
                 stream: IO[str] | None = None) -> None:
        self.run_id = run_id
        self.options = options
        self.stream = stream if stream is not None else sys.stderr
        self.trace_id = run_trace_id(run_id)
        self.metrics = Metrics()
        self._server: MetricsServer | None = None
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        self._lock = threading.Lock()
        self.metrics_url: str | None = None
        self._sdk_log: logging.Logger | None = None
        self._sdk_handler: logging.Handler | None = None

    # -- lifetime ------------------------------------------------------------------------
    def open(self) -> Session:
        if self.options.log_format == "json":  # the SDK's own warnings as log lines too
            self._sdk_log = logging.getLogger("opentelemetry")
            self._sdk_handler = _AsLines(self)
            self._sdk_log.addHandler(self._sdk_handler)
            self._sdk_log.propagate = False
        if self.options.tracing:
            endpoint = self.options.otlp_endpoint
            exporter = (OTLPSpanExporter(endpoint=_traces_url(endpoint)) if endpoint
                        else OTLPSpanExporter())
            from pitstop import __version__

            self._provider = TracerProvider(
                resource=Resource.create({"service.name": "pitstop",
                                          "service.version": __version__}),
                id_generator=_RunIds(self.trace_id))
            self._provider.add_span_processor(BatchSpanProcessor(exporter))
            self._tracer = self._provider.get_tracer("pitstop")
        if self.options.metrics_address is not None:
            host, port = parse_address(self.options.metrics_address)
            self._server = MetricsServer(self.metrics, host, port)
            self.metrics_url = self._server.start()
        return self

    def close(self, linger: bool = True) -> None:
        """Flush the spans; keep ``/metrics`` up for the linger, then stop serving."""
        if self._provider is not None:
            self._provider.force_flush(timeout_millis=10_000)
            self._provider.shutdown()
            self._provider = None
            self._tracer = None
        if self._sdk_log is not None and self._sdk_handler is not None:
            self._sdk_log.removeHandler(self._sdk_handler)
            self._sdk_log.propagate = True
            self._sdk_log = self._sdk_handler = None
        if self._server is not None:
            if linger and self.options.metrics_linger_s > 0:
                time.sleep(self.options.metrics_linger_s)
            self._server.close()
            self._server = None

    # -- spans ---------------------------------------------------------------------------
    def _start(self, name: str, parent: Span | None, attributes: dict[str, Attr]) -> Span:
        if self._tracer is None:
            return NO_SPAN
        ctx = None
        if isinstance(parent, _OtelSpan):
            ctx = trace.set_span_in_context(parent.span)
        attrs: dict[str, Attr] = {RUN_ID: self.run_id}
        attrs.update({k if "." in k else f"pitstop.{k}": v for k, v in attributes.items()})
        return _OtelSpan(self._tracer.start_span(name, context=ctx, attributes=attrs))

    @contextmanager
    def span(self, name: str, parent: Span | None = None,
             **attributes: Attr) -> Iterator[Span]:
        span = self._start(name, parent, attributes)
        try:
            with self.within(span):
                yield span
        except BaseException as exc:
            span.fail(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            span.end()

    def start_span(self, name: str, parent: Span | None = None, **attributes: Attr) -> Span:
        return self._start(name, parent if parent is not None else self.current(), attributes)

    def current(self) -> Span | None:
        if self._tracer is None:
            return None
        span = trace.get_current_span()
        return _OtelSpan(span) if span.get_span_context().is_valid else None

    @contextmanager
    def within(self, span: Span) -> Iterator[None]:
        if not isinstance(span, _OtelSpan):
            yield
            return
        token = otel_context.attach(trace.set_span_in_context(span.span))
        try:
            yield
        finally:
            otel_context.detach(token)

    def trace_environment(self) -> dict[str, str]:
        if self._tracer is None:
            return {}
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return {k.upper(): v for k, v in carrier.items() if v}

    def span_ids(self) -> tuple[str, str | None]:
        """(trace id, current span id) in hex, for log lines."""
        span = trace.get_current_span().get_span_context() if self._tracer else None
        return (f"{self.trace_id:032x}",
                f"{span.span_id:016x}" if span is not None and span.is_valid else None)

    # -- measurements --------------------------------------------------------------------
    def step_finished(self, action: str, seconds: float, outcome: str) -> None:
        self.metrics.step_duration.labels(action=action, outcome=outcome).observe(
            max(0.0, seconds))

    def node_job_finished(self, seconds: float, outcome: str) -> None:
        self.metrics.node_job_duration.labels(outcome=outcome).observe(max(0.0, seconds))

    def drain_stalled(self, seconds: float) -> None:
        if seconds > 0:
            self.metrics.drain_stall.inc(seconds)

    def gate_verdict(self, gate: str, verdict: str) -> None:
        self.metrics.gate_verdicts.labels(gate=gate, verdict=verdict).inc()

    def rolled_back(self, wave: str) -> None:
        self.metrics.rollbacks.inc()

    def restored(self, seconds: float) -> None:
        self.metrics.restore_duration.observe(max(0.0, seconds))

    def eviction(self, answer: str) -> None:
        self.metrics.evictions.labels(answer=answer).inc()

    def backend_call(self, method: str, ok: bool) -> None:
        self.metrics.backend_calls.labels(method=method, result="ok" if ok else "error").inc()

    def run_status(self, status: str) -> None:
        self.metrics.run_status(status)

    # -- log lines -----------------------------------------------------------------------
    def log(self, event: str, message: str, level: str = "info", **fields: Any) -> None:
        """One JSON object on one line: time, level, event, message, run id, trace id (and
        the current span id), then ``fields``."""
        trace_id, span_id = self.span_ids()
        doc: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level, "event": event, "message": message,
            "run_id": self.run_id, "trace_id": trace_id}
        if span_id is not None:
            doc["span_id"] = span_id
        doc.update({k: v for k, v in fields.items() if k not in doc})
        line = json.dumps(doc, default=str, ensure_ascii=False)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def on_event(self, action: str, info: dict[str, Any]) -> None:
        """The executor's ``on_event``: the run's status for ``pitstop_runs``, and with
        ``--log-format json`` every audited event as a line."""
        if action in ("run-start", "run-resume"):
            self.run_status("running")
        elif action.startswith("run-") and action[4:] in _FINAL:
            self.run_status(action[4:])
        if self.options.log_format == "json":
            extra = {k: v for k, v in info.items() if k not in ("subject", "reason")}
            self.log(action, str(info.get("reason", "")), subject=info.get("subject"), **extra)


class _AsLines(logging.Handler):
    """The OpenTelemetry SDK's log records (an unreachable collector, a dropped batch) as
    JSON lines of the session's log."""

    def __init__(self, session: Session) -> None:
        super().__init__(logging.INFO)
        self.session = session

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.session.log("telemetry", record.getMessage(), level=record.levelname.lower(),
                             logger=record.name)
        except Exception:  # a log line must never end the run
            self.handleError(record)


_FINAL = ("completed", "paused", "rolled-back", "aborted", "failed")

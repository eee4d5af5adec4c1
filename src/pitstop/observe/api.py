"""The interface the executor and the backends use to report what they do: spans (run, wave,
step, node job, gate evaluation, rollback) and the few measurements that are not visible from
the outside (step and node-job durations on the backend's clock, gate verdicts, rollbacks,
time to restore, drain stalls). :data:`NO_TELEMETRY` does nothing; a real session
(:mod:`pitstop.observe.session`) installs itself with :func:`activate` while a run goes on.

Nothing here imports OpenTelemetry or prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

__all__ = ["NO_SPAN", "NO_TELEMETRY", "Attr", "NoTelemetry", "Span", "Telemetry", "activate",
           "active"]

Attr = str | int | float | bool


class Span(Protocol):
    """One span: a unit of work with a start and an end."""

    def set(self, key: str, value: Attr) -> None: ...

    def fail(self, message: str) -> None:
        """Mark the span's work as failed (status ERROR with this message)."""
        ...

    def end(self) -> None: ...


class Telemetry(Protocol):
    def span(self, name: str, parent: Span | None = None,
             **attributes: Attr) -> AbstractContextManager[Span]:
        """A span around a block, current in this thread inside it (``parent``: the parent
        span when it is not the thread's current one, e.g. in a cluster's lane)."""
        ...

    def start_span(self, name: str, parent: Span | None = None, **attributes: Attr) -> Span:
        """A span that ends when :meth:`Span.end` is called (a node job advanced in turns)."""
        ...

    def current(self) -> Span | None:
        """The span current in this thread, to hand to another thread as ``parent``."""
        ...

    def within(self, span: Span) -> AbstractContextManager[None]:
        """Make ``span`` current in this thread inside the block (it does not end)."""
        ...

    def trace_environment(self) -> dict[str, str]:
        """W3C trace context of the current span for a child process's environment
        (``TRACEPARENT``, ``TRACESTATE``); empty when not tracing."""
        ...

    def step_finished(self, action: str, seconds: float, outcome: str) -> None: ...

    def node_job_finished(self, seconds: float, outcome: str) -> None: ...

    def drain_stalled(self, seconds: float) -> None: ...

    def gate_verdict(self, gate: str, verdict: str) -> None: ...

    def rolled_back(self, wave: str) -> None: ...

    def restored(self, seconds: float) -> None:
        """A failed gate's wave is back at its known-good versions, ``seconds`` after it
        failed (on the backend's clock)."""
        ...


class _NoSpan:
    def set(self, key: str, value: Attr) -> None:
        return None

    def fail(self, message: str) -> None:
        return None

    def end(self) -> None:
        return None


NO_SPAN: Span = _NoSpan()
"""The span of work nobody traces: every call does nothing."""


class NoTelemetry:
    """Telemetry that records nothing (the default)."""

    @contextmanager
    def span(self, name: str, parent: Span | None = None,
             **attributes: Attr) -> Iterator[Span]:
        yield NO_SPAN

    def start_span(self, name: str, parent: Span | None = None, **attributes: Attr) -> Span:
        return NO_SPAN

    def current(self) -> Span | None:
        return None

    @contextmanager
    def within(self, span: Span) -> Iterator[None]:
        yield

    def trace_environment(self) -> dict[str, str]:
        return {}

    def step_finished(self, action: str, seconds: float, outcome: str) -> None:
        return None

    def node_job_finished(self, seconds: float, outcome: str) -> None:
        return None

    def drain_stalled(self, seconds: float) -> None:
        return None

    def gate_verdict(self, gate: str, verdict: str) -> None:
        return None

    def rolled_back(self, wave: str) -> None:
        return None

    def restored(self, seconds: float) -> None:
        return None


NO_TELEMETRY: Telemetry = NoTelemetry()
_active: list[Telemetry] = [NO_TELEMETRY]


def active() -> Telemetry:
    """The telemetry of the run this process carries out now (:data:`NO_TELEMETRY` if none):
    what a backend spawning a node or control-plane command reads its trace context from."""
    return _active[-1]


@contextmanager
def activate(telemetry: Telemetry) -> Iterator[Telemetry]:
    _active.append(telemetry)
    try:
        yield telemetry
    finally:
        _active.remove(telemetry)

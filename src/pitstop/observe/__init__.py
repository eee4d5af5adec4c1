"""pitstop's own telemetry: Prometheus metrics, OpenTelemetry traces over OTLP, JSON logs
(docs/telemetry.md).

The executor and the backends see only :mod:`pitstop.observe.api` — a small interface whose
default does nothing, so the twin, the tests and a run without telemetry options load no
exporter. :mod:`pitstop.observe.session` is the real thing, opened by the command line for
``apply`` and ``resume`` (and, later, the operator and ``serve``): one module for all of them.
"""

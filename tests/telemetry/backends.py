"""Backends the telemetry tests share."""

from __future__ import annotations

from typing import Any

from pitstop.twin import Twin


class WithoutMetrics:
    """The twin as a backend with no metric source (the twin is its own source; a real
    backend without telemetry configured has none): every attribute but ``metrics``."""

    def __init__(self, twin: Twin) -> None:
        self._twin = twin

    def __getattr__(self, name: str) -> Any:
        if name == "metrics":
            raise AttributeError(name)
        return getattr(self._twin, name)

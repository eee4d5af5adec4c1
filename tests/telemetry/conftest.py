"""One real Prometheus for the telemetry tests (harness/prometheus.py): started once, scraping
the test's own /metrics every second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness.prometheus import Prometheus, running_prometheus


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus")) as prom:
        yield prom

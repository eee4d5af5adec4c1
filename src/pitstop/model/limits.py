"""The bounds on what a configuration file may say, in one place (docs/configuration.md, "Limits").

Every bound is checked when the file is read, and a refusal names the limit and the fix (exit 2).
They follow what Kubernetes accepts (replicas and counts are int32, quantities int64, names
DNS-1123: see :mod:`pitstop.model.names`) or, where Kubernetes has no bound, what keeps every
later stage (the plan, the calendar, the twin) within what a computer can hold.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "EARLIEST_TIME",
    "LATEST_TIME",
    "MAX_ALIAS_VALUES",
    "MAX_COUNT",
    "MAX_DOCUMENTS",
    "MAX_DURATION",
    "MAX_FILE_BYTES",
    "MAX_GATE_COUNT",
    "MAX_JUDGE_METRICS",
    "MAX_JUDGE_SAMPLES",
    "MAX_LATENCY_MS",
    "MAX_PARALLELISM",
    "MAX_PODS_PER_CLUSTER",
    "MAX_PROBLEMS",
    "MAX_QUANTITY",
    "MAX_REPLICAS",
    "MAX_YAML_DEPTH",
    "check_time",
]

# -- reading a file (pitstop.config) ---------------------------------------------------------

MAX_FILE_BYTES: Final = 16 * 1024 * 1024
"""One ``-f`` file: read with this cap before it is parsed (``-f /dev/zero`` is refused)."""

MAX_YAML_DEPTH: Final = 64
"""Nesting of mappings and sequences (the deepest field of any kind is about 10 levels)."""

MAX_ALIAS_VALUES: Final = 100_000
"""Values reached through YAML aliases (``*name``), per file: bounds "billion laughs"."""

MAX_DOCUMENTS: Final = 10_000
"""YAML documents (``---``) in one file."""

MAX_PROBLEMS: Final = 100
"""Problems reported at once; the rest are counted."""

# -- values -----------------------------------------------------------------------------------

MAX_COUNT: Final = 2**31 - 1
"""Counts (int32, as every count of the Kubernetes API): maxUnavailable, pods, afterCalls, ..."""

MAX_REPLICAS: Final = MAX_COUNT
"""A workload's replicas: int32, as ``spec.replicas`` of a Deployment."""

MAX_PODS_PER_CLUSTER: Final = 150_000
"""The pods the workloads of one cluster make together (replicas, DaemonSet pods, pods placed
by ``nodes``): Kubernetes' tested limit for one cluster ("Considerations for large clusters":
no more than 150,000 pods). Preflight and the twin hold every pod."""

MAX_QUANTITY: Final = 2**63 - 1
"""CPU in millicores and memory in bytes: int64, as Kubernetes' resource.Quantity."""

MAX_DURATION: Final = timedelta(days=366)
"""Any duration (soak, drainTimeout, estimates, timeouts, intervals): a year."""

MAX_GATE_COUNT: Final = 1000
"""Measurements of one gate (``count``) and the failures, Inconclusive measurements and Errors in
a row it tolerates; a gate is measured at most 2 × count + consecutiveErrorLimit + 1 times."""

MAX_JUDGE_METRICS: Final = 500
"""Metrics one ``pitstop judge`` compares (a JudgeConfig's ``spec.metrics``, a sample file)."""

MAX_JUDGE_SAMPLES: Final = 1000
"""Samples of one metric in one sample file, missing ones included: the judge sorts every
canary × baseline difference (at most a million; pitstop.gates.canary_judge.MAX_SAMPLES)."""

MAX_LATENCY_MS: Final = 3_600_000.0
"""The apiserver latency a FaultScenario may inject: an hour."""

MAX_PARALLELISM: Final = 1000
"""Hosts contacted at once (HostInventory ``parallelism``)."""

EARLIEST_TIME: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME: Final = datetime(9000, 1, 1, tzinfo=UTC)
"""Dates and times (blackouts, waiver expiry, ``--now``, ``--start``) lie in
[EARLIEST_TIME, LATEST_TIME): years 1970 to 8999. The calendar looks a year ahead of
``--start`` and adds durations of up to a year; datetimes end at 9999."""


def check_time(value: datetime) -> datetime:
    """``value`` (naive: read as UTC) if it lies within the bounds, else ValueError."""
    aware = value if value.tzinfo is not None and value.utcoffset() is not None else (
        value.replace(tzinfo=UTC))
    if not EARLIEST_TIME <= aware < LATEST_TIME:
        raise ValueError(f"{value.isoformat()} is outside the times pitstop accepts (from "
                         f"{EARLIEST_TIME.date()} to {(LATEST_TIME - timedelta(days=1)).date()}"
                         "). Fix: write a time within them")
    return value

"""Gates: health checks after steps and waves, with analysis semantics (interval, count, failure
limit; Successful / Failed / Inconclusive / Error).

Pure: no I/O. The executor reads observations and signals through the backend and hands them
here; these functions say what they mean.

* :mod:`~pitstop.gates.condition` — :class:`Condition`, the safe ``result <= 0.01`` language.
* :mod:`~pitstop.gates.analysis` — :class:`Measurement`, :class:`MetricSpec`, :func:`assess`,
  :class:`MetricRun`, :func:`run_verdict`, :func:`decide`, :func:`judge` (Argo-like semantics).
* :mod:`~pitstop.gates.checks` — the built-in checks: :func:`nodes_ready`,
  :func:`workloads_available`, :func:`pods_pending`, :func:`apiserver_health`,
  :func:`etcd_health`, :func:`threshold`, :func:`canary_vs_baseline`.
"""

from pitstop.gates.analysis import (
    CheckResult,
    Decision,
    Judgement,
    Measurement,
    MetricRun,
    MetricSpec,
    Phase,
    assess,
    decide,
    judge,
    measure,
    run_verdict,
    worst,
)
from pitstop.gates.checks import (
    ETCD_DB_QUOTA_SHARE,
    apiserver_health,
    canary_vs_baseline,
    etcd_health,
    nodes_ready,
    pods_pending,
    threshold,
    track_pending,
    workloads_available,
)
from pitstop.gates.condition import Condition, ConditionError

__all__ = [
    "ETCD_DB_QUOTA_SHARE",
    "CheckResult",
    "Condition",
    "ConditionError",
    "Decision",
    "Judgement",
    "Measurement",
    "MetricRun",
    "MetricSpec",
    "Phase",
    "apiserver_health",
    "assess",
    "canary_vs_baseline",
    "decide",
    "etcd_health",
    "judge",
    "measure",
    "nodes_ready",
    "pods_pending",
    "run_verdict",
    "threshold",
    "track_pending",
    "workloads_available",
    "worst",
]

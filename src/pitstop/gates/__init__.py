"""Gates: health checks after steps, measured by providers and judged with analysis semantics
(interval, count, limits; Successful / Failed / Inconclusive / Error).

Pure: no I/O. The executor reads observations and signals through the backend and hands them
here; these functions say what they mean.

* :mod:`~pitstop.gates.condition` — :class:`Condition`, the safe ``result <= 0.01`` language.
* :mod:`~pitstop.gates.analysis` — :class:`Reading`, :class:`Measurement`, :class:`MetricSpec`,
  :func:`assess`, :func:`judge_reading`, :class:`MetricRun`, :func:`run_verdict`,
  :func:`decide`, :func:`judge` (Argo-like semantics).
* :mod:`~pitstop.gates.checks` — the built-in checks: :func:`nodes_ready`,
  :func:`workloads_available`, :func:`pods_pending`, :func:`apiserver_health`,
  :func:`etcd_health`, :func:`canary_vs_baseline`, :func:`addon_rolled_out`.
* :mod:`~pitstop.gates.providers` — :class:`GateProvider` and :data:`PROVIDERS`, the registry
  of gate kinds: the one place a gate kind is defined.
"""

from pitstop.gates.analysis import (
    CheckResult,
    Decision,
    Judgement,
    Measurement,
    MetricRun,
    MetricSpec,
    Phase,
    Reading,
    assess,
    decide,
    judge,
    judge_reading,
    measure,
    run_verdict,
    worst,
)
from pitstop.gates.checks import (
    ETCD_DB_QUOTA_SHARE,
    addon_rolled_out,
    apiserver_health,
    canary_vs_baseline,
    etcd_health,
    nodes_ready,
    pods_pending,
    track_pending,
    workloads_available,
)
from pitstop.gates.condition import Condition, ConditionError
from pitstop.gates.providers import (
    PROMETHEUS,
    PROVIDERS,
    THRESHOLD,
    CheckProvider,
    GateContext,
    GateDefaults,
    GateProvider,
    Read,
    UnknownGateKind,
    from_check,
    provider_for,
)

__all__ = [
    "ETCD_DB_QUOTA_SHARE",
    "PROMETHEUS",
    "PROVIDERS",
    "THRESHOLD",
    "CheckProvider",
    "CheckResult",
    "Condition",
    "ConditionError",
    "Decision",
    "GateContext",
    "GateDefaults",
    "GateProvider",
    "Judgement",
    "Measurement",
    "MetricRun",
    "MetricSpec",
    "Phase",
    "Read",
    "Reading",
    "UnknownGateKind",
    "addon_rolled_out",
    "apiserver_health",
    "assess",
    "canary_vs_baseline",
    "decide",
    "etcd_health",
    "from_check",
    "judge",
    "judge_reading",
    "measure",
    "nodes_ready",
    "pods_pending",
    "provider_for",
    "run_verdict",
    "track_pending",
    "workloads_available",
    "worst",
]

"""PodDisruptionBudget status, computed the way the disruption controller does
(``pkg/controller/disruption``), from the twin's pods.

* ``currentHealthy``: selected pods that are Running, Ready and not deleting (an evicted pod is
  deleting at once, so it never counts, which is what ``status.disruptedPods`` achieves in a
  real cluster).
* ``expectedPods`` and ``desiredHealthy``:

  - ``minAvailable`` as a number: expected = the selected pods that exist (deleting ones
    included); desired = that number;
  - ``minAvailable`` as a percentage: expected = the replicas their controllers want; desired =
    the percentage of expected, **rounded up**;
  - ``maxUnavailable`` (number or percentage): expected = the replicas their controllers want;
    desired = expected − maxUnavailable, where a percentage is also **rounded up**
    (``GetScaledValueFromIntOrPercent(..., roundUp=true)`` for both fields), never below 0.

  So ``minAvailable: 50%`` of 3 pods needs 2 healthy, and ``maxUnavailable: 50%`` of 3 pods
  lets 2 go (needs 1) — the same rounding preflight uses (``pdb_disruptions_possible``).
  A DaemonSet "wants" one pod per node of its pools and a bare pod wants itself; the real
  controller cannot scale those and reports an error instead — the twin is kinder here.
* ``disruptionsAllowed`` = max(0, currentHealthy − desiredHealthy), forced to 0 by the
  ``pdbNeverAllows`` fault.

While ``observedGeneration < generation`` (a PDB was just edited) the figures are computed from
the new spec already; the eviction API refuses every eviction until the controller catches up,
so they are never acted upon.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pitstop.model.common import resolve_int_or_percent
from pitstop.twin.state import PdbState, WorkloadState

__all__ = ["BudgetStatus", "budget_status"]


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    expected_pods: int
    current_healthy: int
    desired_healthy: int
    disruptions_allowed: int


def budget_status(pdb: PdbState, wanted: Callable[[WorkloadState], int], *,
                  blocked: bool = False) -> BudgetStatus:
    """Status of ``pdb``; ``wanted(w)`` is how many pods workload ``w``'s controller wants."""
    healthy = sum(w.available for w in pdb.workloads)
    if pdb.max_unavailable is not None:
        expected = sum(wanted(w) for w in pdb.workloads)
        allowed = resolve_int_or_percent(pdb.max_unavailable, expected, round_up=True)
        desired = max(0, expected - allowed)
    elif isinstance(pdb.min_available, int):
        expected = sum(len(w.pods) for w in pdb.workloads)
        desired = pdb.min_available
    else:  # minAvailable as a percentage (the fleet model requires one of the two fields)
        expected = sum(wanted(w) for w in pdb.workloads)
        desired = resolve_int_or_percent(pdb.min_available or 0, expected, round_up=True)
    allowed_now = 0 if blocked else max(0, healthy - desired)
    return BudgetStatus(expected, healthy, desired, allowed_now)

"""Draining a node, written once for every backend: kubectl's pod filters and the eviction API's
answers, parallel evictions within disruption budgets, timeouts that pause and name the blockers."""

from pitstop.drain.logic import (
    Drainer,
    DrainError,
    DrainErrorKind,
    DrainOptions,
    DrainState,
    DrainStatus,
    FilterResult,
    filter_pods,
    pdbs_selecting,
)

__all__ = ["DrainError", "DrainErrorKind", "DrainOptions", "DrainState", "DrainStatus", "Drainer",
           "FilterResult", "filter_pods", "pdbs_selecting"]

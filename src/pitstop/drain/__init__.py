"""Draining a node, written once for every backend: kubectl's pod filters and the eviction API's
answers, parallel evictions within disruption budgets, timeouts that pause and name the blockers."""

from pitstop.drain.logic import (
    Answer,
    BackendEvictions,
    Drainer,
    DrainError,
    DrainErrorKind,
    DrainOptions,
    DrainState,
    DrainStatus,
    Evictions,
    FilterResult,
    call_all,
    filter_pods,
    pdbs_selecting,
)

__all__ = ["Answer", "BackendEvictions", "DrainError", "DrainErrorKind", "DrainOptions",
           "DrainState", "DrainStatus", "Drainer", "Evictions", "FilterResult", "call_all",
           "filter_pods", "pdbs_selecting"]

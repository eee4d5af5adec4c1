"""The rehearsal twin: a deterministic discrete-event simulation of a fleet in virtual time,
implementing the backend interface (:class:`~pitstop.backend.Backend`).

Public API::

    Twin.create(fleet, *, seed, state_path, faults=None, timings=None) -> Twin
    Twin.open(state_path) -> Twin
    twin.observe / health / cordon / uncordon / annotate / evict / delete_pod / start / poll
    twin.clock.now(), twin.clock.sleep(seconds)      # virtual time
    twin.events(...) -> list[TwinEvent]               # the event log
    twin.availability(), twin.min_available()         # ready vs desired pods per workload
    twin.check_invariants() -> list[InvariantViolation]
    twin.edit_pdb(...), twin.subscribe(callback), twin.next_event_time()

Modules: :mod:`~pitstop.twin.world` (scheduler, controllers, pods and nodes),
:mod:`~pitstop.twin.actions` (long-running actions), :mod:`~pitstop.twin.disruption` (PDB
status), :mod:`~pitstop.twin.faults` (fault injection), :mod:`~pitstop.twin.views`
(observations, health, invariants), :mod:`~pitstop.twin.store` (SQLite), and
:mod:`~pitstop.twin.timings` (durations and deterministic draws).
"""

from pitstop.twin.faults import SimulatedCrash
from pitstop.twin.timings import TwinTimings
from pitstop.twin.twin import AvailabilitySample, Twin, TwinClock, TwinEvent
from pitstop.twin.views import InvariantViolation

__all__ = [
    "AvailabilitySample",
    "InvariantViolation",
    "SimulatedCrash",
    "Twin",
    "TwinClock",
    "TwinEvent",
    "TwinTimings",
]

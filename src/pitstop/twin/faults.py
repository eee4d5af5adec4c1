"""Injecting the faults of a :class:`~pitstop.model.FaultScenario` into the twin.

A :class:`FaultBook` answers the simulation's questions ("does this node come back?", "does
this runtime upgrade fail?", "what is the apiserver latency now?") and remembers what it
decided — which nodes a ``pool`` + ``count`` fault picked, which crashes fired — in a small JSON
document saved with the twin, so a resumed twin decides the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pitstop.model import (
    ApiserverLatency,
    CanaryErrorRate,
    FaultScenario,
    NodeNeverReady,
    PdbNeverAllows,
    ProcessCrash,
    RuntimeUpgradeFails,
)
from pitstop.twin.state import NodeState

__all__ = ["FaultBook", "SimulatedCrash"]


class SimulatedCrash(BaseException):
    """The executor's process dies here (a ``processCrash`` fault).

    A ``BaseException``, like ``SystemExit``: code that catches ``Exception`` to survive a
    failed call must not survive its own death. Fires once, across processes: the twin records
    that it fired before raising.
    """


def _applies(fault: Any, cluster: str) -> bool:
    return fault.cluster is None or fault.cluster == cluster


class FaultBook:
    def __init__(self, scenario: FaultScenario | None, state: dict[str, Any] | None = None,
                 *, epoch: float = 0.0) -> None:
        self.scenario = scenario or FaultScenario()
        self.epoch = epoch  # the twin's start: processCrash.at counts from here
        self.faults = list(self.scenario.spec.faults)
        self.state: dict[str, Any] = state or {"picked": {}, "fired": []}

    # -- nodes -----------------------------------------------------------------------------
    def _picks(self, index: int, fault: NodeNeverReady | RuntimeUpgradeFails, cluster: str,
               node: NodeState) -> bool:
        if not _applies(fault, cluster):
            return False
        if fault.nodes:
            return node.name in fault.nodes
        if fault.pool != node.pool:
            return False
        picked: list[str] = self.state["picked"].setdefault(f"{index}/{cluster}", [])
        if node.name in picked:
            return True
        if len(picked) < fault.count:
            picked.append(node.name)
            return True
        return False

    def never_ready(self, cluster: str, node: NodeState, component: str) -> bool:
        """Whether ``node`` stays NotReady after an upgrade of ``component`` (a new node counts
        as a kubelet upgrade). The first call for a node of a ``pool`` fault picks it."""
        return any(self._picks(i, f, cluster, node) for i, f in enumerate(self.faults)
                   if isinstance(f, NodeNeverReady) and f.component in (None, component))

    def runtime_failure(self, cluster: str, node: NodeState) -> str | None:
        for i, f in enumerate(self.faults):
            if isinstance(f, RuntimeUpgradeFails) and self._picks(i, f, cluster, node):
                return f.message
        return None

    # -- cluster signals -------------------------------------------------------------------
    def latency_ms(self, cluster: str, steps: list[str]) -> float | None:
        out: float | None = None
        for f in self.faults:
            if isinstance(f, ApiserverLatency) and _applies(f, cluster):
                done = sum(1 for s in steps if f.component in (None, s))
                if done >= f.after_steps:
                    out = max(out or 0.0, f.latency_ms)
        return out

    def error_rate(self, cluster: str, nodes: Iterable[NodeState]) -> float | None:
        rates = [f for f in self.faults if isinstance(f, CanaryErrorRate) and _applies(f, cluster)]
        if not rates:
            return None
        upgraded = [n for n in nodes if n.upgraded]
        hit = [f.error_rate for f in rates
               if any(f.pool in (None, n.pool) for n in upgraded)]
        return max(hit) if hit else None

    def pdb_blocked(self, cluster: str, key: str) -> bool:
        return any(isinstance(f, PdbNeverAllows) and _applies(f, cluster) and f.pdb == key
                   for f in self.faults)

    # -- the process dying -----------------------------------------------------------------
    def _crashes(self) -> list[tuple[int, ProcessCrash]]:
        fired = set(self.state["fired"])
        return [(i, f) for i, f in enumerate(self.faults)
                if isinstance(f, ProcessCrash) and i not in fired]

    def crash_due(self, now: float, destructive_calls: int) -> int | None:
        """The index of a crash that must fire at the next call, if any."""
        for i, f in self._crashes():
            if f.at is not None and self.epoch + f.at.total_seconds() <= now:
                return i
            if f.after_calls is not None and destructive_calls >= f.after_calls:
                return i
        return None

    def next_crash_time(self) -> float | None:
        times = [self.epoch + f.at.total_seconds() for _, f in self._crashes()
                 if f.at is not None]
        return min(times) if times else None

    def fire(self, index: int) -> None:
        self.state["fired"].append(index)

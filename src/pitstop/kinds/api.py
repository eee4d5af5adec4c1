"""What a backend kind is to the command line: how a run on it is checked before anything
exists, made, reopened by a later process, and named in prompts.

A kind's :meth:`BackendKind.prepare` does every check that can refuse the run (bad options,
an inventory that does not cover the plan, unreachable clusters, a live fleet that differs from
the planned one) and creates nothing; it returns a :class:`Prepared` whose ``record`` goes into
``run.json`` and whose ``make`` builds the backend inside the new run directory. Only then does
a run directory exist. :meth:`BackendKind.reopen` gives the backend of an existing run from its
record, and :meth:`BackendKind.describe` names what it acts on ("the twin (a rehearsal)",
"contexts prod-eu=kind-prod-eu").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pitstop.backend import Backend

if TYPE_CHECKING:
    from pitstop.config import LoadedConfig
    from pitstop.executor.run import RunDir
    from pitstop.model.faults import FaultScenario
    from pitstop.planner import Plan

__all__ = ["BackendKind", "Prepared", "RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """Every option a backend kind may read (each reads only its own)."""

    runs_dir: Path
    mode: str = "apply"  # apply | rehearse
    now: datetime | None = None
    seed: int = 1  # the twin
    faults: FaultScenario | None = None  # the twin
    kubeconfig: str | None = None  # kube, hosts+kube
    contexts: tuple[str, ...] = ()
    pool_label: str = "pitstop.dev/pool"
    node_upgrader: str = "kwok"
    node_command: str | None = None
    node_verify_timeout_s: float = 300.0
    control_plane_command: str | None = None
    control_plane_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A run that may be made: its backend record and how to build the backend in its
    directory; ``acts_on`` names what it changes (for the prompt and the summary)."""

    record: dict[str, Any]
    make: Callable[[Path], Backend]
    acts_on: str


class BackendKind(Protocol):
    name: str  # as --backend spells it and run.json records it
    help: str  # one line for --help

    def prepare(self, cfg: LoadedConfig, plan: Plan, options: RunOptions) -> Prepared: ...

    def reopen(self, run: RunDir) -> Backend: ...

    def describe(self, record: dict[str, Any]) -> str: ...

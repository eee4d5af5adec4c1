"""The twin as a backend kind: a rehearsal (or an ``apply`` to the twin) of a plan on a
simulated copy of the fleet, its state in the run directory's ``twin.sqlite``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.backend import Backend, BackendError
from pitstop.errors import ConfigError, ConfigProblem, RunDamaged
from pitstop.kinds.api import Prepared, RunOptions
from pitstop.twin import Twin

if TYPE_CHECKING:
    from pitstop.config import LoadedConfig
    from pitstop.executor.run import RunDir
    from pitstop.planner import Plan

__all__ = ["TwinKind"]

STATE_FILE = "twin.sqlite"


class TwinKind:
    name = "twin"
    help = "the twin: a simulated copy of the fleet, in virtual time (a rehearsal)"

    def prepare(self, cfg: LoadedConfig, plan: Plan, options: RunOptions) -> Prepared:
        fleet = cfg.fleet
        if fleet is None:
            raise ConfigError([ConfigProblem("-f", None, "", "the twin needs a Fleet.",
                                             "pass -f fleet.yaml.")])
        start = (options.now or datetime.now(UTC)).timestamp()
        record = {"kind": self.name, "state": STATE_FILE, "seed": options.seed,
                  "mode": options.mode}

        def make(run_dir: Path) -> Backend:
            return Twin.create(fleet, seed=options.seed, state_path=run_dir / STATE_FILE,
                               faults=options.faults, start=start)

        return Prepared(record, make, self.describe(record))

    def reopen(self, run: RunDir) -> Backend:
        path = run.path / str(run.backend.get("state", STATE_FILE))
        try:
            return Twin.open(path)
        except (sqlite3.DatabaseError, BackendError, KeyError, ValueError) as exc:
            raise RunDamaged(f"{path}: the twin's state cannot be read ({exc}). Fix: restore it "
                             "from a backup; nothing was done") from None

    def describe(self, record: dict[str, Any]) -> str:
        return (f"the twin (a rehearsal in virtual time, seed {record.get('seed', 1)}): no real "
                "cluster or host is touched")

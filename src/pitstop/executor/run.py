"""A run directory: everything one execution of a plan needs to be resumed by another process.

    <root>/<run-id>/
        run.json        run id, when, which backend (and where its state lives), cluster labels
        plan.json       the plan being executed (the -o json contract)
        policy.json     the policy in force
        journal.sqlite  write-ahead journal (pitstop.executor.journal)
        audit.jsonl     hash-chained audit log (+ audit.head)
        twin.sqlite     the twin's state, for rehearsals
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitstop.audit import AuditLog
from pitstop.errors import RunNotFound
from pitstop.executor.journal import Journal
from pitstop.model import UpgradePolicy
from pitstop.planner.plan import Plan, plan_from_dict

__all__ = ["RunDir", "RunNotFound", "create_run", "new_run_id", "open_run"]


def new_run_id(now: datetime | None = None) -> str:
    t = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{t}-{secrets.token_hex(3)}"


@dataclass
class RunDir:
    path: Path
    run_id: str
    plan: Plan
    policy: UpgradePolicy
    labels: dict[str, dict[str, str]]
    backend: dict[str, Any]
    journal: Journal
    audit: AuditLog

    def close(self) -> None:
        self.journal.close()


def create_run(root: Path, plan: Plan, policy: UpgradePolicy,
               labels: dict[str, dict[str, str]], backend: dict[str, Any],
               run_id: str | None = None) -> RunDir:
    run_id = run_id or new_run_id()
    path = root / run_id
    path.mkdir(parents=True, exist_ok=False)
    (path / "plan.json").write_text(json.dumps(plan.to_dict(), indent=1))
    (path / "policy.json").write_text(policy.model_dump_json(by_alias=True, indent=1))
    (path / "run.json").write_text(json.dumps({
        "runId": run_id, "created": datetime.now(UTC).isoformat(), "backend": backend,
        "labels": labels}, indent=1))
    journal = Journal(path / "journal.sqlite")
    journal.init_steps([s.id for s in plan.steps])
    journal.set("status", "created")
    return RunDir(path, run_id, plan, policy, labels, backend, journal,
                  AuditLog(path / "audit.jsonl"))


def open_run(path: Path) -> RunDir:
    if not (path / "run.json").is_file():
        raise RunNotFound(f"{path}: not a pitstop run directory (no run.json). Fix: pass the "
                          "directory `pitstop apply` or `pitstop rehearse` printed.")
    meta = json.loads((path / "run.json").read_text())
    plan = plan_from_dict(json.loads((path / "plan.json").read_text()))
    policy = UpgradePolicy.model_validate_json((path / "policy.json").read_text())
    return RunDir(path, meta["runId"], plan, policy, meta["labels"], meta["backend"],
                  Journal(path / "journal.sqlite"), AuditLog(path / "audit.jsonl"))

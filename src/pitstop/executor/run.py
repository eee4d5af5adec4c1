"""A run directory: everything one execution of a plan needs to be resumed by another process.

    <root>/<run-id>/            mode 0700; every file in it 0600
        run.json        run id, when, which backend (and where its state lives), cluster labels
        plan.json       the plan being executed (the -o json contract)
        policy.json     the policy in force
        fleet.json      the fleet the plan was made from
        journal.sqlite  the run's state (pitstop.store: steps, write-ahead actions, approvals)
        run.lock        held by the one process that acts on the run (names it)
        audit.jsonl     hash-chained audit log (+ audit.head)
        twin.sqlite     the twin's state, for rehearsals

The run's ``run-start`` audit record carries the SHA-256 of plan.json, policy.json and
fleet.json; every later process that acts on the run checks them first
(:mod:`pitstop.executor.integrity`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pitstop.audit import AuditLog, AuditRecord
from pitstop.errors import RunDamaged, RunNotFound
from pitstop.model import Fleet, UpgradePolicy
from pitstop.planner.plan import Plan, plan_from_dict
from pitstop.store import LockHolder, RunStore, SqliteRunStore

__all__ = ["RUN_FILES", "RunDir", "create_run", "new_run_id", "open_run", "private_umask"]

RUN_FILES = ("plan.json", "policy.json", "fleet.json")
"""The run's documents whose hashes the run-start audit record keeps."""


def new_run_id(now: datetime | None = None) -> str:
    t = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{t}-{secrets.token_hex(3)}"


def private_umask() -> None:
    """Files this process makes from now on are its user's only (run state holds inventories,
    commands and backend records): directories 0700, files 0600, whatever umask it was
    started with."""
    os.umask(0o077)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def file_hash(path: Path) -> str:
    """SHA-256 of a run file as written ("" when it does not exist)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


@dataclass
class RunDir:
    path: Path
    run_id: str
    plan: Plan
    policy: UpgradePolicy
    labels: dict[str, dict[str, str]]
    backend: dict[str, Any]
    journal: RunStore
    audit: AuditLog
    held: LockHolder | None = None  # this process holds the run (integrity.acting)

    def close(self) -> None:
        self.journal.close()

    def fingerprints(self) -> dict[str, str]:
        """SHA-256 of each of :data:`RUN_FILES` as it is on disk now."""
        return {name: file_hash(self.path / name) for name in RUN_FILES}

    def record(self, actor: str, action: str, reason: str, subject: str, before: Any = None,
               after: Any = None, *, at: float | None = None, **extra: Any) -> AuditRecord:
        """Append to the audit log and keep its new head in the journal: every audit record of
        a run goes through here, so the journal and the log can be checked against each other
        (the record carries the journal's newest action, the journal the log's newest
        record)."""
        self.journal.crash_point(subject)  # crash tests: an audit record is a write too
        rec = self.audit.append(self.run_id, actor, action, reason, subject, before, after,
                                at=at, journal=self.journal.last_seq(), **extra)
        self.journal.set("audit-head", f"{rec.seq}:{rec.hash}")
        return rec


def create_run(root: Path, plan: Plan, policy: UpgradePolicy,
               labels: dict[str, dict[str, str]], backend: dict[str, Any],
               run_id: str | None = None, *, fleet: Fleet | None = None) -> RunDir:
    run_id = run_id or new_run_id()
    path = root / run_id
    root.mkdir(parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=False)
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    _write_private(path / "plan.json", json.dumps(plan.to_dict(), indent=1))
    _write_private(path / "policy.json", policy.model_dump_json(by_alias=True, indent=1))
    if fleet is not None:
        _write_private(path / "fleet.json", fleet.model_dump_json(by_alias=True, indent=1))
    _write_private(path / "run.json", json.dumps({
        "runId": run_id, "created": datetime.now(UTC).isoformat(), "backend": backend,
        "labels": labels}, indent=1))
    journal = SqliteRunStore(path / "journal.sqlite", create=True)
    journal.init_steps([s.id for s in plan.steps])
    journal.set("status", "created")
    return RunDir(path, run_id, plan, policy, labels, backend, journal,
                  AuditLog(path / "audit.jsonl"))


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDamaged(f"{path}: {what} is missing from the run directory. Fix: restore it "
                         "from a backup; nothing was done to the fleet") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunDamaged(f"{path}: {what} cannot be read ({exc}). Fix: restore it from a "
                         "backup; nothing was done to the fleet") from None


def open_run(path: Path) -> RunDir:
    if not (path / "run.json").is_file():
        raise RunNotFound(f"{path}: not a pitstop run directory (no run.json). Fix: pass the "
                          "directory `pitstop apply` or `pitstop rehearse` printed.")
    meta = _read_json(path / "run.json", "run.json (the run's record)")
    plan_doc = _read_json(path / "plan.json", "plan.json (the plan being carried out)")
    policy_doc = _read_json(path / "policy.json", "policy.json (the policy in force)")
    try:
        run_id, labels, backend = str(meta["runId"]), meta["labels"], meta["backend"]
        if not isinstance(labels, dict) or not isinstance(backend, dict):
            raise TypeError("labels and backend must be mappings")
    except (KeyError, TypeError) as exc:
        raise RunDamaged(f"{path / 'run.json'}: not a run record ({exc}). Fix: restore it from "
                         "a backup; nothing was done to the fleet") from None
    try:
        plan = plan_from_dict(plan_doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDamaged(f"{path / 'plan.json'}: not a plan ({type(exc).__name__}: {exc}). "
                         "Fix: restore it from a backup; nothing was done to the fleet"
                         ) from None
    try:
        policy = UpgradePolicy.model_validate(policy_doc)
    except ValidationError as exc:
        raise RunDamaged(f"{path / 'policy.json'}: not a valid policy "
                         f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}). "
                         "Fix: restore it from a backup; nothing was done to the fleet"
                         ) from None
    journal = SqliteRunStore(path / "journal.sqlite")
    return RunDir(path, run_id, plan, policy, labels, backend, journal,
                  AuditLog(path / "audit.jsonl"))

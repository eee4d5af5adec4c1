"""Run files are checked before they are trusted.

A run directory is plain files; anyone who can write it can edit the plan, the journal or the
log. pitstop does not let such an edit act on the fleet silently. Before a process acts on a run
(``apply``, ``resume``, ``rollback``: :func:`acting`),
:func:`check_run` refuses it (:class:`~pitstop.errors.RunDamaged`, naming the file and the
way out, nothing done) when:

* the audit log does not verify (an edited, deleted, reordered or torn record), or its newest
  record is not the one the journal remembers (``audit-head``: records cut off the end, or the
  log replaced);
* plan.json, policy.json or fleet.json differ from the hashes the ``run-start`` record keeps
  (``requiresApproval: false`` written into the plan, steps removed from its end, …);
* the journal lost actions the log saw (the newest record was written when the journal held
  action N, and the journal now holds fewer: a dropped ``journal.sqlite-wal``), or was emptied;
* the journal says a step is done that the log never saw finish.

And approvals count only with their audit record (:func:`counted_approvals`): a row inserted
into the journal by hand is not an approval. What this cannot catch is a consistent rewrite of
every file of the run, log and journal together; an anchor kept outside the run directory
(``pitstop audit verify --head``) or the shared store of the service mode does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from pitstop.audit import verify
from pitstop.errors import RunDamaged
from pitstop.executor.run import RunDir
from pitstop.executor.vocabulary import AuditAction, RunStatus, StepStatus
from pitstop.store import LockHolder

__all__ = ["acting", "check_run", "counted_approvals", "records"]

_WAY_OUT = ("Nothing was done to the fleet. Fix: restore the run directory from a backup, or "
            "leave this run: check the fleet (`pitstop inventory`, `pitstop status RUN`) and "
            "plan a new run from what it is now")


@contextlib.contextmanager
def acting(run: RunDir, command: str) -> Iterator[LockHolder]:
    """Hold ``run`` for this process — refused, naming the holder, when another process holds
    it — after checking that its files are the ones it started with (:func:`check_run`).
    Re-entrant within the process (``apply`` holds the run it made while it executes it)."""
    if run.held is not None:
        yield run.held
        return
    with run.journal.lock(command) as me:
        check_run(run)
        run.held = me
        try:
            yield me
        finally:
            run.held = None


def records(run: RunDir) -> Iterator[dict[str, Any]]:
    """The audit records of ``run``, in order (lines that are not records are skipped: the
    caller verifies the log first)."""
    try:
        text = run.audit.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            yield rec


def check_run(run: RunDir) -> None:
    """Refuse a run whose files disagree with each other (module docstring)."""
    status = run.journal.get("status")
    anchor = run.journal.get("audit-head")
    log = run.audit.path
    if not log.exists():
        if status not in ("", RunStatus.CREATED) or anchor:
            raise RunDamaged(f"{log}: the audit log is missing, but the journal says the run is "
                             f"{status or 'underway'}. {_WAY_OUT}")
        return
    result = verify(log, anchor.partition(":")[2] or None)
    if not result.ok:
        raise RunDamaged(f"{log}: the audit log does not verify — "
                         + "; ".join(result.problems[:5]) + f". {_WAY_OUT}")
    recs = list(records(run))
    if not status:
        raise RunDamaged(f"{run.path / 'journal.sqlite'}: the journal is empty, but the audit "
                         f"log holds {len(recs)} record(s) of this run. {_WAY_OUT}")
    if recs and not anchor:
        raise RunDamaged(f"{run.path / 'journal.sqlite'}: the journal does not know the audit "
                         f"log's newest record (seq {recs[-1].get('seq')}): it was replaced or "
                         f"rolled back. {_WAY_OUT}")
    start = next((r for r in recs if r.get("action") == AuditAction.RUN_START), None)
    if start is not None:
        kept = (start.get("extra") or {}).get("files") or {}
        now = run.fingerprints()
        for name, digest in sorted(kept.items()):
            if now.get(name, "") != digest:
                raise RunDamaged(
                    f"{run.path / name}: changed since the run started (sha256 "
                    f"{now.get(name) or 'missing'}; the run-start audit record keeps "
                    f"{digest}). A run carries out the plan it was started with. {_WAY_OUT}")
    saw = max((int((r.get("extra") or {}).get("journal") or 0) for r in recs), default=0)
    have = run.journal.last_seq()
    if have < saw:
        raise RunDamaged(f"{run.path / 'journal.sqlite'}: the journal holds {have} action(s) but "
                         f"the audit log saw {saw}: committed actions were lost (a dropped "
                         f"journal.sqlite-wal?). {_WAY_OUT}")
    finished = {r.get("subject") for r in recs if r.get("action") == AuditAction.STEP_DONE}
    forged = [s.step_id for s in run.journal.steps()
              if s.status == StepStatus.DONE and s.step_id not in finished]
    if forged:
        raise RunDamaged(f"{run.path / 'journal.sqlite'}: the journal says step(s) "
                         f"{', '.join(forged[:5])} are done, but the audit log never recorded "
                         f"them finishing. {_WAY_OUT}")


def counted_approvals(run: RunDir, step_id: str, allowed: set[str] | None
                      ) -> tuple[list[str], list[str]]:
    """``(counted, ignored)`` approvers of ``step_id``: an approval counts when its audit record
    exists (the seq and hash the journal keeps, with action ``approve``, this step and this
    approver) and the approver is allowed (``allowed`` None: anyone)."""
    by_seq = {int(r.get("seq") or 0): r for r in records(run)}
    counted: list[str] = []
    ignored: list[str] = []
    for a in run.journal.approvals(step_id):
        rec = by_seq.get(a.audit_seq)
        ok = (rec is not None and rec.get("hash") == a.audit_hash
              and rec.get("action") == AuditAction.APPROVE and rec.get("subject") == step_id
              and rec.get("actor") == a.approver)
        if ok and (allowed is None or a.approver in allowed):
            counted.append(a.approver)
        else:
            ignored.append(a.approver)
    return counted, ignored

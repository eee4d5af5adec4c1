"""Approving a step: the one way an approval is recorded.

An approval is refused — not silently kept, never counted — when the step does not exist, needs
no approval, or the approver is not on the policy's list for the step's environment (the
message names the groups that may approve). An accepted approval is written to the audit log
first and then to the journal with that record's seq and hash: the executor counts an approval
only with its audit record (:func:`pitstop.executor.integrity.counted_approvals`).

The approver is a name the caller vouches for (the local command line takes ``--as``);
authenticated identities come with the dashboard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pitstop.errors import ConfigError, ConfigProblem, RunRefused
from pitstop.executor.integrity import counted_approvals
from pitstop.executor.run import RunDir
from pitstop.executor.vocabulary import AuditAction, StepStatus

__all__ = ["ApprovalResult", "approve_step"]


@dataclass(frozen=True)
class ApprovalResult:
    step_id: str
    approver: str
    counted: list[str]  # every approver counted now, this one included
    required: int
    allowed: list[str]  # empty: anyone may approve
    audit_seq: int


def approve_step(run: RunDir, step_id: str, approver: str, *, at: float | None = None
                 ) -> ApprovalResult:
    """Record ``approver``'s approval of ``step_id`` (module docstring), or refuse it."""
    step = next((s for s in run.plan.steps if s.id == step_id), None)
    if step is None:
        waiting = [s.id for s in run.plan.steps if s.requires_approval]
        raise ConfigError([ConfigProblem(
            "--step", None, "", f"no step {step_id!r} in run {run.run_id}.",
            "copy the id from `pitstop status` (steps that need approval: "
            + (", ".join(waiting) or "none") + ").")])
    if not step.requires_approval:
        raise RunRefused(f"step {step_id} needs no approval; nothing was recorded. Steps of "
                         f"run {run.run_id} that need one: " + (", ".join(
                             s.id for s in run.plan.steps if s.requires_approval) or "none"))
    need = next((a for a in run.plan.approvals if a.cluster == step.cluster), None)
    required = need.required if need else 1
    allowed = sorted(need.approvers) if need and need.approvers else []
    if allowed and approver not in allowed:
        raise RunRefused(f"{approver!r} may not approve step {step_id}: the policy's approvers "
                         f"for environment {need.environment if need else '?'} are "
                         f"{', '.join(allowed)}; nothing was recorded")
    if run.journal.step(step_id).status == StepStatus.DONE:
        raise RunRefused(f"step {step_id} is done already; an approval now changes nothing")
    rec = run.record(approver, AuditAction.APPROVE, f"approved step {step_id}", step_id, at=at)
    run.journal.approve(step_id, approver, time.time() if at is None else at, rec.seq, rec.hash)
    counted, _ = counted_approvals(run, step_id, set(allowed) or None)
    return ApprovalResult(step_id, approver, counted, required, allowed, rec.seq)

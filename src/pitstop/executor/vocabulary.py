"""The executor's words, in one place: the statuses of a run and of its steps, the kinds of
action its journal records, the requests a person can make, and the audit actions other code
reads back. Each is a string enum, so the journal, ``-o json`` and the audit log hold the same
text as before; code compares members, never bare strings.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Act", "AuditAction", "Request", "RunStatus", "StepStatus"]


class RunStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    COMPLETED = "completed"  # every step done, every gate passed, the fleet at the plan's end
    PAUSED = "paused"  # waits for a person: the reason says what to do; `resume` goes on
    ABORTED = "aborted"  # stopped for good at a safe point; nothing undone
    ROLLED_BACK = "rolled-back"  # a gate failed and the wave went back to its last good state
    FAILED = "failed"  # the run cannot end as recorded (e.g. the fleet is not where it says)

    @property
    def final(self) -> bool:
        """No process continues a run in this status."""
        return self in (RunStatus.COMPLETED, RunStatus.ABORTED, RunStatus.ROLLED_BACK,
                        RunStatus.FAILED)


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"  # work done, gates passed, soak over
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"
    PAUSED = "paused"

    @property
    def touched(self) -> bool:
        """The step may have changed the fleet (a rollback looks at it)."""
        return self in (StepStatus.DONE, StepStatus.FAILED, StepStatus.RUNNING)


class Act(StrEnum):
    """Kinds of journal action: an intent before every effect on the fleet (and a record of
    each decision that needs one), its outcome after."""

    CORDON = "cordon"
    ANNOTATE = "annotate"
    EVICT = "evict"
    FORCE = "force"  # the policy allowed forcing a drain past its timeout
    UPGRADE = "upgrade"  # a node component's operation started
    UPGRADE_DONE = "upgrade-done"  # …and ended (outcome: succeeded | failed)
    UNCORDON = "uncordon"
    NODE_DONE = "node-done"
    OPERATION = "operation"  # a control-plane, etcd or add-on operation started
    OPERATION_DONE = "operation-done"
    REPLACE_ADD = "replace-add"
    REPLACE_READY = "replace-ready"
    REPLACE_REMOVE = "replace-remove"
    SKEW_CHECK = "skew-check"
    FINAL_CHECK = "final-check"


class Request(StrEnum):
    """What a person asked the run to do at its next safe point."""

    NONE = ""
    PAUSE = "pause"
    ABORT = "abort"


class AuditAction(StrEnum):
    """Audit actions that are read back (integrity checks, approvals, reports)."""

    RUN_START = "run-start"
    RUN_RESUME = "run-resume"
    APPROVE = "approve"
    STEP_DONE = "step-done"

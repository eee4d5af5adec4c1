"""The audit log: append-only, hash-chained JSON lines of every decision and action.

* :class:`AuditLog` appends records (``seq``, ``time``, ``run_id``, ``actor``, ``action``,
  ``subject``, ``reason``, ``before``, ``after``, ``extra``, ``prev``, ``hash``), safely across
  processes, with secrets redacted, and keeps the newest hash in a head file next to the log.
* :func:`verify` reports every edited, deleted, reordered, torn or unreadable line by number,
  and records dropped from the end when an anchor (``expect_head`` or the head file) is present.
"""

from pitstop.audit.jsonvalue import JsonValue
from pitstop.audit.log import GENESIS, AuditError, AuditLog, AuditRecord, head_path, record_hash
from pitstop.audit.redact import REDACTED, is_secret_key, redact, redact_text
from pitstop.audit.verify import VerifyResult, verify

__all__ = [
    "GENESIS",
    "REDACTED",
    "AuditError",
    "AuditLog",
    "AuditRecord",
    "JsonValue",
    "VerifyResult",
    "head_path",
    "is_secret_key",
    "record_hash",
    "redact",
    "redact_text",
    "verify",
]

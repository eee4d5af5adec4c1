"""Keeping secrets out of the audit log: :mod:`pitstop.redact`'s rules, with the mask
:data:`REDACTED`.

:func:`redact` walks a JSON value: the value of every key that names a secret (``password``,
``token``, ``secret``, ``authorization``, a last word ``key``…; :func:`is_secret_key`) is
replaced whatever it is, and every string is redacted as text (bearer tokens, PEM private keys,
``Authorization:`` values, passwords in URLs, ``password=…``/``--token …`` and the like, AWS key
ids). A consequence worth knowing: ``operation_key`` is redacted too, so an idempotency key
belongs under a name such as ``operation``.
"""

from __future__ import annotations

from pitstop.audit.jsonvalue import JsonValue
from pitstop.redact import REDACTED, is_secret_key, redact_json
from pitstop.redact import redact_text as _redact_text

__all__ = ["REDACTED", "is_secret_key", "redact", "redact_text"]


def redact_text(text: str) -> str:
    """``text`` with everything that looks like a secret replaced by :data:`REDACTED`."""
    return _redact_text(text, mask=REDACTED)


def redact(value: JsonValue) -> JsonValue:
    """A copy of ``value`` with secrets replaced by :data:`REDACTED`."""
    return redact_json(value, mask=REDACTED)

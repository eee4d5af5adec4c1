"""Keeping secrets out of the audit log.

:func:`redact` walks a JSON value and replaces

* the value of every mapping key whose name contains one of the words ``password``, ``passwd``,
  ``passphrase``, ``token``, ``secret``, ``credential(s)``, ``authorization``, or ends in the word
  ``key`` (``key``, ``api_key``, ``privateKey``, ``ssh-key``), whatever the value is; and
* inside every string, bearer tokens (``Bearer abc…``) and PEM private keys
  (``-----BEGIN … PRIVATE KEY-----`` up to its END line, or to the end of the text when the END line
  is missing)

with :data:`REDACTED`. Key names are split into words (``_``, ``-``, ``.``, spaces and camelCase),
so ``monkey`` and ``keyboard`` are kept while ``apiKey`` is not. A consequence worth knowing:
``operation_key`` is redacted too, so an idempotency key belongs under a name such as
``operation``.
"""

from __future__ import annotations

import re

from pitstop.audit.jsonvalue import JsonValue

__all__ = ["REDACTED", "is_secret_key", "redact", "redact_text"]

REDACTED = "[redacted]"

_SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "token", "secret", "credential", "credentials",
    "authorization", "apikey", "privatekey",
})
_KEY_WORDS = frozenset({"key", "keys"})
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

_BEARER_RE = re.compile(r"\bbearer\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_PEM_RE = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)


def is_secret_key(name: str) -> bool:
    """Whether a mapping key names a secret (see the module docstring for the words)."""
    words = [w.lower() for w in _WORD_RE.findall(name)]
    if not words:
        return False
    return any(w in _SECRET_WORDS for w in words) or words[-1] in _KEY_WORDS


def redact_text(text: str) -> str:
    """``text`` with bearer tokens and PEM private keys replaced by :data:`REDACTED`."""
    text = _PEM_RE.sub(REDACTED, text)
    return _BEARER_RE.sub(REDACTED, text)


def redact(value: JsonValue) -> JsonValue:
    """A copy of ``value`` with secrets replaced by :data:`REDACTED`."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value

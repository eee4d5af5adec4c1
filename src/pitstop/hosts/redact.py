"""Keep secrets out of logs, error messages, journals and audit records.

Everything the host layer hands to :mod:`logging` or puts into an exception message (commands,
their output) goes through :func:`redact` first. Two kinds of secret are removed:

* values the caller declares (``Redactor(secrets=[...])``, e.g. a token a step passes to a
  command), replaced wherever they appear;
* values that look like secrets whatever they are: ``password=…``, ``--token …``,
  ``Authorization: Bearer …``, credentials in URLs (``https://user:pw@…``), PEM private key
  blocks and AWS access key ids.

Redaction errs on the side of removing too much: a log line with ``***`` in it costs nothing, a
leaked credential costs a rotation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "Redactor", "redact"]

MASK = "***"

_KEY_WORDS = (
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?|auth"
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # -----BEGIN OPENSSH PRIVATE KEY----- … -----END OPENSSH PRIVATE KEY-----
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?"
                r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
     "-----BEGIN PRIVATE KEY-----" + MASK + "-----END PRIVATE KEY-----"),
    # Authorization: Bearer abc / Basic abc
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*(?:bearer|basic|token)?\s*)[^\s'\"]+"),
     r"\1" + MASK),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + MASK),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@"), r"\1" + MASK + "@"),
    # FOO_TOKEN=abc, password: abc, "secret": "abc", --password abc, --password=abc, -p abc is
    # too ambiguous to touch.
    (re.compile(r"(?i)(\b[A-Za-z0-9_.-]*(?:" + _KEY_WORDS
                + r")[A-Za-z0-9_.-]*['\"]?\s*[=:]\s*['\"]?)[^\s'\",;]+"), r"\1" + MASK),
    (re.compile(r"(?i)(--?(?:[a-z0-9-]*(?:" + _KEY_WORDS + r")[a-z0-9-]*)\s+)(?!-)[^\s'\"]+"),
     r"\1" + MASK),
    # AWS access key ids
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
)


class Redactor:
    """Replaces declared secrets and secret-looking values with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._secrets, *secrets])

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


_DEFAULT = Redactor()


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Redact ``text`` with the built-in patterns and the given ``secrets``."""
    return (_DEFAULT.with_secrets(secrets) if secrets else _DEFAULT)(text)

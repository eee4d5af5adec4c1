"""Keeping secrets out of everything pitstop writes: logs, error messages, the audit log, the
journal and the files of a run directory.

One set of rules serves every caller; each caller picks the mask it writes in place of a secret
(the audit log writes ``[redacted]``, the host layer ``***``).

**Names.** :func:`is_secret_key` says whether a name (a JSON key, a variable, an option) names a
secret. The name is split into words (``_``, ``-``, ``.``, spaces and camelCase), and it is
secret when a word is ``password``, ``passwd``, ``passphrase``, ``token``, ``secret``,
``credential(s)``, ``authorization``, ``apikey`` or ``privatekey``, or contains one of
``password``, ``passwd``, ``passphrase``, ``secret``, ``token`` (``PGPASSWORD``), or when its
last word is ``key`` or ``keys`` (``api_key``, ``privateKey``, ``ssh-key``). ``monkey``,
``keyboard``, ``key_id``, ``keyFile`` and ``passed`` are kept.

**Text.** :func:`redact_text` replaces, in this order:

* secrets the caller declares (:class:`Redactor`), wherever they appear;
* PEM private key blocks (``-----BEGIN … PRIVATE KEY-----`` up to the END line, or to the end
  of the text when it is cut off), whole;
* ``Authorization: <scheme> <value>`` → ``Authorization: MASK``;
* ``Bearer <token>`` anywhere, whole;
* the password of a URL (``https://user:pw@host`` → ``https://user:MASK@host``);
* ``NAME=value``, ``NAME: value``, ``"NAME": "value"`` when NAME names a secret (see above):
  the value;
* ``--NAME value`` and ``-NAME value`` when NAME names a secret: the value (``--password=x`` is
  the form above);
* AWS access key ids (``AKIA…``, ``ASIA…``).

**JSON.** :func:`redact_json` walks a JSON value: the value of every key that names a secret is
replaced whatever it is, and every string is redacted as text.

Redaction errs on the side of removing too much: a log line with a mask in it costs nothing, a
leaked credential costs a rotation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeAlias

__all__ = ["REDACTED", "Json", "Redactor", "is_secret_key", "redact_json", "redact_text"]

REDACTED = "[redacted]"  # the mask of records and files (the audit log, a run's inventory)

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None

_SECRET_WORDS = frozenset({
    "password", "passwd", "passphrase", "token", "secret", "credential", "credentials",
    "authorization", "apikey", "privatekey",
})
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token")
_KEY_WORDS = frozenset({"key", "keys"})
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_secret_key(name: str) -> bool:
    """Whether ``name`` names a secret (see the module docstring for the words)."""
    words = [w.lower() for w in _WORD_RE.findall(name)]
    if not words:
        return False
    return words[-1] in _KEY_WORDS or any(
        w in _SECRET_WORDS or any(part in w for part in _SECRET_PARTS) for w in words)


_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?"
                  r"(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)
_AUTHORIZATION = re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?)"
                            r"(?:(?:bearer|basic|token|negotiate|digest)\s+)?[^\s'\",;]+")
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@")
_ASSIGNMENT = re.compile(r"(?<![A-Za-z0-9_.])(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)"
                         r"(?P<sep>['\"]?\s*[=:]\s*['\"]?)(?P<value>[^\s'\",;]+)")
_OPTION = re.compile(r"(?<![A-Za-z0-9_-])(?P<flag>--?(?P<name>[A-Za-z][A-Za-z0-9_-]*))"
                     r"(?P<sep>\s+)(?P<value>(?!-)[^\s'\"]+)")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def redact_text(text: str, *, mask: str = "***", secrets: Iterable[str] = ()) -> str:
    """``text`` with the ``secrets`` given and everything that looks like a secret replaced by
    ``mask`` (see the module docstring)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, mask)
    text = _PEM.sub(mask, text)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + mask, text)
    text = _BEARER.sub(mask, text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + mask + "@", text)
    text = _assignments(text, mask)
    text = _OPTION.sub(lambda m: (m.group("flag") + m.group("sep") + mask)
                       if is_secret_key(m.group("name")) else m.group(0), text)
    return _AWS_KEY_ID.sub(mask, text)


def _assignments(text: str, mask: str) -> str:
    def one(m: re.Match[str]) -> str:
        head = m.group("name") + m.group("sep")
        if is_secret_key(m.group("name")):
            return head + mask
        return head + _assignments(m.group("value"), mask)  # ``x=password=…``

    return _ASSIGNMENT.sub(one, text)


def redact_json(value: Json, *, mask: str = "***") -> Json:
    """A copy of ``value`` with the value of every secret-naming key replaced by ``mask`` and
    every string redacted as text."""
    if isinstance(value, str):
        return redact_text(value, mask=mask)
    if isinstance(value, dict):
        return {k: (mask if is_secret_key(k) else redact_json(v, mask=mask))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, mask=mask) for v in value]
    return value


class Redactor:
    """:func:`redact_text` with a fixed mask and a set of declared secrets (values a caller knows
    are secret, e.g. a token it passes to a command)."""

    def __init__(self, secrets: Iterable[str] = (), *, mask: str = "***") -> None:
        # Longest first, so that a secret containing another is removed whole.
        self._secrets = tuple(sorted({s for s in secrets if s and len(s) >= 3}, key=len,
                                     reverse=True))
        self.mask = mask

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        return Redactor([*self._secrets, *secrets], mask=self.mask)

    def __call__(self, text: str) -> str:
        return redact_text(text, mask=self.mask, secrets=self._secrets)

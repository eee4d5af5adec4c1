"""Credentials out of the messages :mod:`pitstop.kube` builds from server addresses and
exception texts, by the one set of rules (:mod:`pitstop.redact`), masked ``***``.

A kubeconfig's ``server`` may carry a user and password (``https://admin:PASS@host``) or a
token as its user, an exception may quote a request header (``Authorization: Basic …``,
``Bearer …``) or a query (``?access_token=…``), and an exec plugin's error may quote its answer
(``"token": "…"``) or key material.
"""

from __future__ import annotations

from pitstop.redact import redact_text

__all__ = ["MASK", "redact", "redact_url"]

MASK = "***"


def redact(text: str) -> str:
    """``text`` with the credentials it may quote hidden."""
    return redact_text(text, mask=MASK)


def redact_url(url: str) -> str:
    """``url`` without the password (or token) in its user part."""
    return redact_text(url, mask=MASK)

"""Credentials out of the messages :mod:`pitstop.kube` builds from server addresses and
exception texts.

A kubeconfig's ``server`` may carry a user and password (``https://admin:PASS@host``), an
exception may quote a request header (``Authorization: Basic …``, ``Bearer …``) or a query
(``?access_token=…``), and an exec plugin's error may quote its answer. :func:`redact` hides
the secret part and keeps what says where: ``https://admin:***@host``, ``Bearer ***``,
``access_token=***``, ``"token": "***"``, and ``[private key]`` for a PEM private key.

(pitstop.audit and pitstop.hosts have redactors of their own; this one lives here because
``pitstop.kube`` may import neither. One shared redactor below all three should replace them.)
"""

from __future__ import annotations

import re

__all__ = ["redact", "redact_url"]

_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/?#@:'\"]*)"
    r"(?P<password>:[^\s/?#@'\"]*)?@")
_HEADER = re.compile(
    r"(?i)(?P<key>\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?)[^\s\"',]+")
_BEARER = re.compile(r"(?i)(?P<key>\bbearer\s+)[^\s\"']+")
_QUERY = re.compile(
    r"(?i)(?P<key>\b(?:access_token|id_token|refresh_token|token|password|passwd|"
    r"client_secret|secret)=)[^&\s'\"]+")
_JSON = re.compile(
    r"(?i)(?P<key>[\"'](?:token|access_token|id_token|refresh_token|password|client-secret|"
    r"client_secret|clientKeyData|client-key-data)[\"']\s*:\s*[\"'])[^\"']*")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
                  re.S)


def _userinfo(m: re.Match[str]) -> str:
    if m["password"] is not None:
        return f"{m['scheme']}{m['user']}:***@"
    return f"{m['scheme']}***@"  # a user alone may be a token


def redact_url(url: str) -> str:
    """``url`` without the password (or token) in its user part."""
    return _USERINFO.sub(_userinfo, url)


def redact(text: str) -> str:
    """``text`` with the credentials it may quote hidden (see the module docstring)."""
    text = _PEM.sub("[private key]", text)
    text = _USERINFO.sub(_userinfo, text)
    text = _HEADER.sub(lambda m: f"{m['key']}***", text)
    text = _BEARER.sub(lambda m: f"{m['key']}***", text)
    text = _QUERY.sub(lambda m: f"{m['key']}***", text)
    return _JSON.sub(lambda m: f"{m['key']}***", text)

"""Debian package version ordering (Debian Policy §5.6.12, "Version").

``[epoch:]upstream_version[-debian_revision]``: the epoch compares numerically; upstream
version and revision compare part by part, alternating a non-digit run (compared character by
character, where ``~`` sorts before everything including the end of the string, then the end,
then letters, then other characters) and a digit run (compared as numbers).

Pinning needs the exact build string; ordering is needed to pick the newest builds apt offers
and to tell an upgrade from a downgrade. Written from the policy text.
"""

from __future__ import annotations

import functools
import re

__all__ = ["compare", "sort_key", "split", "upstream"]

_DIGITS = re.compile(r"\d+")


def split(version: str) -> tuple[int, str, str]:
    """``(epoch, upstream, revision)``; a missing revision is ``""`` (compares as ``"0"``)."""
    text = version.strip()
    epoch = 0
    if ":" in text:
        head, text = text.split(":", 1)
        epoch = int(head) if head.isdigit() else 0
    upstream_part, revision = (text.rsplit("-", 1) if "-" in text else (text, ""))
    return epoch, upstream_part, revision


def upstream(version: str) -> str:
    """The upstream version with distribution decorations removed: ``1:1.6.20~ds1-1+deb12u3``
    → ``1.6.20``. Used to compare a package build with a release number."""
    _, up, _ = split(version)
    m = re.match(r"\d+(?:\.\d+)*", up)
    return m.group(0) if m else up


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    ia = ib = 0
    while ia < len(a) or ib < len(b):
        # Non-digit run.
        while (ia < len(a) and not a[ia].isdigit()) or (ib < len(b) and not b[ib].isdigit()):
            ca = _order(a[ia]) if ia < len(a) and not a[ia].isdigit() else 0
            cb = _order(b[ib]) if ib < len(b) and not b[ib].isdigit() else 0
            if ca != cb:
                return -1 if ca < cb else 1
            if ia < len(a) and not a[ia].isdigit():
                ia += 1
            if ib < len(b) and not b[ib].isdigit():
                ib += 1
        # Digit run.
        ma = _DIGITS.match(a, ia)
        mb = _DIGITS.match(b, ib)
        na = int(ma.group(0)) if ma else 0
        nb = int(mb.group(0)) if mb else 0
        if na != nb:
            return -1 if na < nb else 1
        ia = ma.end() if ma else ia
        ib = mb.end() if mb else ib
    return 0


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian orders version ``a`` against ``b`` (``dpkg --compare-versions``)."""
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra or "0", rb or "0")


sort_key = functools.cmp_to_key(compare)

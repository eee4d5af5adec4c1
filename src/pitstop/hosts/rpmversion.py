"""RPM package version ordering: ``rpmvercmp`` and epoch:version-release comparison.

Written from rpm's documented semantics (``rpmvercmp`` in rpm's ``rpmio/rpmvercmp.c`` and the
cases in rpm's ``tests/rpmvercmp.at``; the tests check these cases and cross-check against the
installed ``rpm`` when there is one):

* A version string is cut into segments of ASCII letters or ASCII digits; every other character
  only separates segments (``2.0``, ``2_0`` and ``2+0`` are equal).
* ``~`` sorts before everything, even the end of the string: ``1.0~rc1 < 1.0``.
* ``^`` sorts after the end of the string but before anything else: ``1.0 < 1.0^git1 < 1.0.1``.
* Two digit segments compare as numbers (leading zeros ignored); two letter segments compare
  as strings; a digit segment is newer than a letter segment.
* When one string runs out of segments, the one with segments left is newer.

A full version is ``[epoch:]version[-release]``. As in rpm's ``rpmverCmp`` (``rpmio/rpmver.c``),
the epoch (missing = 0) compares first, then the version, then the release, each with
``rpmvercmp``; a missing release sorts before any release (``1.0 < 1.0-1``). (Only rpm's
dependency ranges, ``rpmverOverlap``, let a missing release match any.)

pitstop writes a build as dnf and rpm print it: ``version-release``, with ``epoch:`` in front
only when the epoch is not 0 (``1.6.28-1.el9``, ``2:1.7.0-1.fc40``).
"""

from __future__ import annotations

import functools
import re

__all__ = ["compare", "evr", "format_evr", "sort_key", "split", "upstream", "vercmp"]


def _alpha(c: str) -> bool:
    return ("a" <= c <= "z") or ("A" <= c <= "Z")


def _digit(c: str) -> bool:
    return "0" <= c <= "9"


def vercmp(a: str, b: str) -> int:
    """-1, 0 or 1: rpm's ``rpmvercmp`` on one field (a version, or a release)."""
    if a == b:
        return 0
    i = j = 0
    na, nb = len(a), len(b)
    while i < na or j < nb:
        # Skip separators: anything but an ASCII letter or digit, ~ and ^.
        while i < na and not (_alpha(a[i]) or _digit(a[i]) or a[i] in "~^"):
            i += 1
        while j < nb and not (_alpha(b[j]) or _digit(b[j]) or b[j] in "~^"):
            j += 1
        ca = a[i] if i < na else ""
        cb = b[j] if j < nb else ""
        # Tilde: sorts before everything else, the end of the string included.
        if ca == "~" or cb == "~":
            if ca != "~":
                return 1
            if cb != "~":
                return -1
            i += 1
            j += 1
            continue
        # Caret: after the end of the string, before anything else.
        if ca == "^" or cb == "^":
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != "^":
                return 1
            if cb != "^":
                return -1
            i += 1
            j += 1
            continue
        if not (ca and cb):
            break
        # A segment: a run of digits or a run of letters, taken by the type of a's segment.
        is_num = _digit(ca)
        same = _digit if is_num else _alpha
        ei = i
        while ei < na and same(a[ei]):
            ei += 1
        ej = j
        while ej < nb and same(b[ej]):
            ej += 1
        seg_a, seg_b = a[i:ei], b[j:ej]
        if not seg_b:
            # The segments differ in type: a number is newer than letters.
            return 1 if is_num else -1
        if is_num:
            seg_a = seg_a.lstrip("0")
            seg_b = seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return 1 if len(seg_a) > len(seg_b) else -1
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
        i, j = ei, ej
    rest_a = i < na
    rest_b = j < nb
    if not rest_a and not rest_b:
        return 0
    # The string with something left is newer (the leftovers here are never ~ or ^).
    return 1 if rest_a else -1


def split(version: str) -> tuple[str | None, str, str | None]:
    """``(epoch, version, release)`` as rpm parses an EVR string: the epoch is the digits
    before a ``:`` (None when there is none), the release what follows the last ``-`` (None
    when there is none)."""
    text = version.strip()
    epoch: str | None = None
    m = re.match(r"(\d*):", text)
    if m:
        epoch = m.group(1) or "0"
        text = text[m.end():]
    release: str | None = None
    if "-" in text:
        text, release = text.rsplit("-", 1)
    return epoch, text, release


def evr(epoch: str | int | None, version: str, release: str | None) -> str:
    """The build string pitstop uses, as dnf prints it: ``epoch:`` only when not 0."""
    head = "" if epoch in (None, "", "(none)") else f"{epoch}:"
    return format_evr(head + version + (f"-{release}" if release else ""))


def format_evr(version: str) -> str:
    """Normalise ``0:1.0-1`` to ``1.0-1`` (the epoch 0 is implied)."""
    epoch, ver, rel = split(version)
    head = f"{int(epoch)}:" if epoch is not None and int(epoch) != 0 else ""
    return head + ver + (f"-{rel}" if rel is not None else "")


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as rpm orders ``[epoch:]version[-release]`` ``a`` against ``b``."""
    ea, va, ra = split(a)
    eb, vb, rb = split(b)
    rc = vercmp(ea or "0", eb or "0")
    if rc:
        return rc
    rc = vercmp(va, vb)
    if rc:
        return rc
    if ra is None or rb is None:
        return (ra is not None) - (rb is not None)
    return vercmp(ra, rb)


def upstream(version: str) -> str:
    """The release number in a build: ``2:1.6.28-1.el9`` → ``1.6.28``."""
    _, ver, _ = split(version)
    m = re.match(r"\d+(?:\.\d+)*", ver)
    return m.group(0) if m else ver


sort_key = functools.cmp_to_key(compare)

"""RPM version order (:mod:`pitstop.hosts.rpmversion`) against rpm's own documented cases.

``RPMVERCMP`` is the table of rpm's ``tests/rpmvercmp.at`` (rpm-software-management/rpm), with
the caret cases rpm added with ``^`` support (4.15) and the "oddities" it documents as current
behaviour. ``test_dnf.py`` checks the same table, and the EVR cases, against the installed rpm
(``rpm.vercmp`` in rpm's Lua).
"""

from __future__ import annotations

import pytest

from pitstop.hosts import rpmversion

RPMVERCMP: list[tuple[str, str, int]] = [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0), ("2.0", "2.0.1", -1), ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0), ("2.0.1a", "2.0.1", 1), ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0), ("5.5p1", "5.5p2", -1), ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0), ("5.5p1", "5.5p10", -1), ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1), ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0), ("xyz10", "xyz10.1", -1), ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0), ("xyz.4", "8", -1), ("8", "xyz.4", 1), ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1), ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1), ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1), ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1), ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0), ("1.0a", "1.0aa", -1), ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0), ("10.0001", "10.1", 0), ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1), ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1), ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0), ("20101121", "20101122", -1), ("20101122", "20101121", 1),
    ("2_0", "2_0", 0), ("2.0", "2_0", 0), ("2_0", "2.0", 0),
    # RhBug:178798: separators alone are equal.
    ("a", "a", 0), ("a+", "a+", 0), ("a+", "a_", 0), ("a_", "a+", 0), ("+a", "+a", 0),
    ("+a", "_a", 0), ("_a", "+a", 0), ("+_", "+_", 0), ("_+", "+_", 0), ("_+", "_+", 0),
    ("+", "_", 0), ("_", "+", 0),
    # Tilde: before everything, the end of the string included.
    ("1.0~rc1", "1.0~rc1", 0), ("1.0~rc1", "1.0", -1), ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1), ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0), ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    # Caret: after the end of the string, before anything else.
    ("1.0^", "1.0^", 0), ("1.0^", "1.0", 1), ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0), ("1.0^git1", "1.0", 1), ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1), ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1), ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0), ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0), ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1),
    ("1.0~rc1^git1", "1.0~rc1^git1", 0), ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0), ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
    # Oddities rpm documents as its current behaviour (RhBug:811992).
    ("1b.fc17", "1b.fc17", 0), ("1b.fc17", "1.fc17", -1), ("1.fc17", "1b.fc17", 1),
    ("1g.fc17", "1g.fc17", 0), ("1g.fc17", "1.fc17", 1), ("1.fc17", "1g.fc17", -1),
]

# Full [epoch:]version[-release] builds, compared as rpm's rpmverCmp does
# (rpm-software-management/rpm rpmio/rpmver.c).
EVR: list[tuple[str, str, int]] = [
    ("1.0-1", "1.0-2", -1),
    ("1.0-2", "1.0-10", -1),
    ("1:0.9-1", "1.0-2", 1),  # the epoch first
    ("0:1.0-1", "1.0-1", 0),  # a missing epoch is 0
    ("2:1.0-1", "10:1.0-1", -1),  # epochs are numbers
    ("1.6.28-1.el9", "1.6.28-1.el9_4", -1),
    ("1.7.0~rc1-1.fc40", "1.7.0-1.fc40", -1),
    ("1.7.0-1.fc40", "1.7.0^20240101git1-1.fc40", -1),
    ("1.0", "1.0-3", -1),  # a missing release sorts first (rpmverCmp)
    ("1.0-3", "1.0", 1),
    ("1.0", "1.1-1", -1),
]


@pytest.mark.parametrize(("a", "b", "want"), RPMVERCMP)
def test_rpmvercmp_matches_rpms_documented_cases(a: str, b: str, want: int) -> None:
    assert rpmversion.vercmp(a, b) == want


@pytest.mark.parametrize(("a", "b", "want"), EVR)
def test_epoch_version_release_order(a: str, b: str, want: int) -> None:
    assert rpmversion.compare(a, b) == want
    assert rpmversion.compare(b, a) == -want


def test_builds_are_written_as_dnf_prints_them() -> None:
    assert rpmversion.evr("0", "1.0", "1") == "1.0-1"
    assert rpmversion.evr("(none)", "1.0", "1") == "1.0-1"
    assert rpmversion.evr("2", "1.6.28", "1.el9") == "2:1.6.28-1.el9"
    assert rpmversion.format_evr("0:1.0-1") == "1.0-1"
    assert rpmversion.split("3:1.0-1.el9") == ("3", "1.0", "1.el9")
    assert rpmversion.split("1.0") == (None, "1.0", None)
    assert rpmversion.upstream("2:1.6.28-1.el9") == "1.6.28"
    builds = ["1.0-1", "1:0.9-1", "1.0~rc1-1", "1.0-2", "1.0^git1-1"]
    assert sorted(builds, key=rpmversion.sort_key) == \
        ["1.0~rc1-1", "1.0-1", "1.0-2", "1.0^git1-1", "1:0.9-1"]

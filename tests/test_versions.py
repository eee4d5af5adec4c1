from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitstop.versions import Minor, Version, VersionError, parse_version


@pytest.mark.parametrize(
    ("text", "core", "pre", "build"),
    [
        ("1.34.2", "1.34.2", "", ""),
        ("v1.34.2", "1.34.2", "", ""),
        ("3.5", "3.5.0", "", ""),
        ("1.35.0-rc.1", "1.35.0", "rc.1", ""),
        ("1.6.20~ds1-1+deb12u3", "1.6.20", "", "~ds1-1+deb12u3"),
    ],
)
def test_parse(text: str, core: str, pre: str, build: str) -> None:
    v = parse_version(text)
    assert (v.core(), v.pre, v.build) == (core, pre, build)


@pytest.mark.parametrize("text", ["", "1", "latest", "1.x.2", "01.2.3", "1.2.3.4"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(VersionError, match="not a version"):
        parse_version(text)


def test_ordering() -> None:
    chain = ["1.33.9", "1.34.0-alpha.1", "1.34.0-rc.0", "1.34.0-rc.1", "1.34.0", "1.34.1",
             "1.34.10"]
    parsed = [parse_version(x) for x in chain]
    shuffled = [parsed[i] for i in (3, 0, 6, 1, 5, 2, 4)]
    assert sorted(shuffled) == parsed
    assert parse_version("1.6.20~ds1-1+deb12u2") < parse_version("1.6.20~ds1-1+deb12u3")


def test_minor_arithmetic() -> None:
    assert Minor(1, 34).minus(Minor(1, 31)) == 3
    assert Minor(1, 33).next() == Minor(1, 34)
    assert parse_version("1.34.2").line == Minor(1, 34)
    with pytest.raises(VersionError):
        Minor(2, 0).minus(Minor(1, 9))


@given(st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50)),
       st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50)))
def test_order_matches_tuples(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    va, vb = (parse_version(".".join(map(str, x))) for x in (a, b))
    assert (va < vb) == (a < b)
    assert (va == vb) == (a == b)
    assert isinstance(va, Version)

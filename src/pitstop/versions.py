"""Version numbers as the upgrade domain uses them.

Kubernetes, etcd, containerd and CRI-O all publish ``MAJOR.MINOR.PATCH`` releases, sometimes with a
leading ``v`` and a pre-release suffix (``1.35.0-rc.1``). Distribution packages add their own
decorations (``1.6.20~ds1-1+deb12u3``). :class:`Version` keeps the numeric core for ordering and
skew arithmetic and remembers the text it was parsed from, so that a package build can be pinned
exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

__all__ = ["MAX_VERSION_LENGTH", "UNREADABLE", "Minor", "Version", "VersionError",
           "parse_version", "version_key"]

# Each number has at most 9 digits and the whole text at most MAX_VERSION_LENGTH characters:
# versions are compared millions of times and reach every table.
_VERSION_RE = re.compile(
    r"^v?(?P<major>0|[1-9]\d{0,8})\.(?P<minor>0|[1-9]\d{0,8})(?:\.(?P<patch>0|[1-9]\d{0,8}))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?P<rest>[~+][0-9A-Za-z.~+:-]*)?$"
)
MAX_VERSION_LENGTH = 128


class VersionError(ValueError):
    """Text that is not a version number."""


@dataclass(frozen=True, slots=True, order=True)
class Minor:
    """A ``MAJOR.MINOR`` release line, e.g. Kubernetes 1.34 or containerd 2.1."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def next(self) -> Minor:
        return Minor(self.major, self.minor + 1)

    def minus(self, other: Minor) -> int:
        """Distance in minors between two lines of the same major (``1.34 - 1.31 == 3``)."""
        if self.major != other.major:
            raise VersionError(f"cannot compare minors across majors: {self} and {other}")
        return self.minor - other.minor

    @classmethod
    def parse(cls, text: str) -> Minor:
        v = parse_version(text if text.count(".") >= 1 else f"{text}.0")
        return cls(v.major, v.minor)


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A release version. Ordering follows SemVer on the numeric core and pre-release tag;
    distribution suffixes (``~ds1-1+deb12u3``) order after the plain release and among themselves
    by their text, which is how Debian orders the builds this project meets."""

    major: int
    minor: int
    patch: int
    pre: str = ""
    build: str = ""
    raw: str = field(default="", compare=False)
    # Derived once: plans compare the same few versions millions of times.
    _key: tuple[int, int, int, int, tuple[tuple[int, int | str], ...], str] = field(
        init=False, repr=False, compare=False)
    _line: Minor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A release without a pre-release tag sorts after its pre-releases.
        pre_key: tuple[tuple[int, int | str], ...] = tuple(
            (0, int(p)) if p.isdigit() else (1, p) for p in self.pre.split(".") if p
        )
        object.__setattr__(self, "_key", (self.major, self.minor, self.patch,
                                          0 if self.pre else 1, pre_key, self.build))
        object.__setattr__(self, "_line", Minor(self.major, self.minor))

    @property
    def line(self) -> Minor:
        return self._line

    def core(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def __str__(self) -> str:
        if self.raw:
            return self.raw
        text = self.core()
        if self.pre:
            text += f"-{self.pre}"
        return text + self.build

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.pre)


_CACHE: dict[str, Version] = {}


def parse_version(text: str) -> Version:
    """Parse ``1.34.2``, ``v1.34.2``, ``1.35.0-rc.1``, ``3.5`` (patch 0) or a distribution build
    such as ``1.6.20~ds1-1+deb12u3``. Results are interned: fleets repeat the same few versions
    on many nodes."""
    cached = _CACHE.get(text)
    if cached is not None:
        return cached
    m = _VERSION_RE.match(text.strip()) if len(text) <= MAX_VERSION_LENGTH else None
    if m is None:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise VersionError(
            f"{shown!r} is not a version: expected MAJOR.MINOR.PATCH such as 1.34.2 "
            "(a leading 'v' and a suffix such as -rc.1 or ~ds1-1+deb12u3 are allowed; numbers "
            f"of at most 9 digits, at most {MAX_VERSION_LENGTH} characters)"
        )
    v = Version(
        int(m["major"]),
        int(m["minor"]),
        int(m["patch"] or 0),
        m["pre"] or "",
        m["rest"] or "",
        raw=text.strip().removeprefix("v"),
    )
    if len(_CACHE) < 100_000:
        _CACHE[text] = v
    return v


UNREADABLE = (-1, -1, -1)


def version_key(text: str) -> tuple[int, int, int]:
    """A sort key for version text as backends report it: (major, minor, patch), or
    :data:`UNREADABLE` (before every version) when it is not a version."""
    try:
        v = parse_version(text)
    except ValueError:
        return UNREADABLE
    return (v.major, v.minor, v.patch)

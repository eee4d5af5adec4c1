"""Findings: what pitstop noticed about a fleet or a plan, with severity, objects and a fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Finding", "Severity"]


class Severity(StrEnum):
    BLOCKING = "blocking"  # the upgrade must not start until this is fixed (or waived)
    WARNING = "warning"  # the upgrade may run, with the consequence stated
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found. ``code`` is stable (listed in docs/operations.md) so that tools can
    match on it; ``objects`` names what it is about (``cluster/namespace/name`` or node names)."""

    code: str
    severity: Severity
    message: str
    fix: str = ""
    cluster: str = ""
    objects: tuple[str, ...] = field(default_factory=tuple)
    source: str = "preflight"  # "preflight" or "planner"

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.BLOCKING

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "source": self.source,
            "cluster": self.cluster,
            "objects": list(self.objects),
            "message": self.message,
            "fix": self.fix,
        }

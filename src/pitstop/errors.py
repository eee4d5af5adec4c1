"""Errors pitstop reports to people: one tree, mapped to a message and an exit code at the
boundary (the command line prints :class:`PitstopError`'s text, never a traceback, and exits
with its :attr:`~PitstopError.exit_code`).

    PitstopError              something a person must know or do (exit 1 unless said)
    ├── ConfigError           bad input: file, line, field, what was expected, the fix (exit 2)
    ├── CatalogError          a catalog data file is missing or malformed (exit 2)
    ├── RunError              a run as a whole
    │   ├── RunNotFound       no run directory or id of that name (exit 2)
    │   ├── RunRefused        the run cannot start or go on as asked; nothing was changed (exit 1)
    │   ├── RunLocked         another process acts on the run: names it (exit 1)
    │   └── RunDamaged        a run file is unreadable, or disagrees with the audit log: names
    │                         the file and the way out; nothing is done to the fleet (exit 2)
    ├── BackendError          the backend could not do what was asked: connection, permission,
    │   │                     a broken check — not an answer of the fleet (exit 1)
    │   └── (pitstop.hosts.connect.HostError and the hosts backend's errors)
    └── AuditError            the audit log cannot be appended to (pitstop.audit.log)

Answers the fleet gives (a PDB refuses an eviction, an upgrade fails) are values, never these
exceptions; the executor turns a :class:`BackendError` during a run into a pause that says what
could not be done.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackendError", "CatalogError", "ConfigError", "ConfigProblem", "PitstopError",
           "RunDamaged", "RunError", "RunLocked", "RunNotFound", "RunRefused"]


class PitstopError(Exception):
    """Base of every error pitstop reports to a person."""

    exit_code = 1
    label = ""  # how the command line introduces the message, "pitstop: <kind>:"

    @property
    def kind(self) -> str:
        """``label``, else "error" for bad input (exit 2) and "refused" for the rest."""
        return self.label or ("error" if self.exit_code == 2 else "refused")


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in one input file."""

    file: str
    line: int | None
    field: str
    message: str
    fix: str = ""

    def render(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.field}: " if self.field else f"{where}: "
        text += self.message
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class ConfigError(PitstopError):
    """Input that pitstop cannot accept. Carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


class CatalogError(PitstopError):
    """A version-catalog data file that is missing, malformed or inconsistent."""

    exit_code = 2


class RunError(PitstopError):
    """Something about a run as a whole (its directory, its state, who acts on it)."""


class RunNotFound(RunError):
    exit_code = 2


class RunRefused(RunError):
    """The run cannot start, or go on, as asked; nothing was changed."""


class RunLocked(RunError):
    """Another process holds the run: only one process acts on a run at a time."""


class RunDamaged(RunError):
    """A run file that cannot be read, or that disagrees with the audit log: the message names
    the file and what to do; nothing is done to the fleet."""

    exit_code = 2


class BackendError(PitstopError):
    """The backend could not do what was asked (not: the fleet said no)."""

    label = "backend error"

"""Errors pitstop reports to people.

Every error that reaches the command line is a :class:`PitstopError`; the CLI prints its message
(never a traceback) and exits with :attr:`PitstopError.exit_code`.

    PitstopError
    ├── ConfigError        bad input: a file, line and field, what was expected, how to fix (exit 2)
    └── CatalogError       a catalog data file is missing or malformed (exit 2)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CatalogError", "ConfigError", "ConfigProblem", "PitstopError"]


class PitstopError(Exception):
    """Base of every error pitstop reports to a person."""

    exit_code = 1


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

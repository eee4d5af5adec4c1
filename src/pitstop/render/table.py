"""Tables and documents, for a terminal and for everything else.

On a terminal a table is a rich table with a box; anywhere else (a pipe, a file, CI logs) it is
plain columns aligned with spaces under upper-case headers, one row per line, as ``kubectl get``
prints them, so that ``grep``, ``awk`` and ``column`` work on it. Every cell is data: it is made
:func:`~pitstop.render.safe.visible` and never read as rich markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pitstop.render.safe import visible

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Cell", "emit_document", "plain_table", "print_table"]

COLUMN_GAP = "   "


@dataclass(frozen=True, slots=True)
class Cell:
    """A table cell of one or more lines (a terminal shows them one under the other; plain
    output joins them with ``sep``), in a rich ``style`` on a terminal."""

    lines: tuple[str, ...]
    style: str = ""
    sep: str = "; "

    @classmethod
    def of(cls, value: str | Cell) -> Cell:
        return value if isinstance(value, Cell) else cls((value,))

    def plain(self) -> str:
        return self.sep.join(visible(x) for x in self.lines)


def _header(name: str) -> str:
    """``latestPatch`` → ``LATEST PATCH``, ``steps`` → ``STEPS`` (as kubectl's headers)."""
    import re

    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", visible(name)).upper()


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str | Cell]]) -> list[str]:
    """The lines of a plain table: headers upper-cased, columns padded to their widest cell
    (in terminal cells, so that wide characters line up), the last column not padded."""
    from rich.cells import cell_len

    text = [[_header(c) for c in columns]] + [[Cell.of(v).plain() for v in r] for r in rows]
    widths = [max(cell_len(r[i]) for r in text) for i in range(len(columns))]
    lines = []
    for r in text:
        parts = [v + " " * (widths[i] - cell_len(v)) for i, v in enumerate(r[:-1])]
        lines.append(COLUMN_GAP.join([*parts, r[-1]]).rstrip())
    return lines


def print_table(console: Console, columns: Sequence[str], rows: Sequence[Sequence[str | Cell]],
                *, title: str | None = None, sections: Sequence[int] = (),
                no_wrap: Sequence[str] = (), ratio: dict[str, int] | None = None) -> None:
    """Print a table: boxed on a terminal (a rule before each row index in ``sections``; the
    ``no_wrap`` columns, such as ids to copy, never folded; with ``ratio`` the table takes the
    terminal's width and those columns share what the others leave in that ratio), plain
    columns otherwise (``title`` on a line of its own before it)."""
    if not console.is_terminal:
        if title:
            console.out(visible(title), highlight=False)
        for line in plain_table(columns, rows):
            console.out(line, highlight=False)
        return
    from rich.table import Table
    from rich.text import Text

    t = Table(title=visible(title) if title else None, expand=bool(ratio))
    for c in columns:
        t.add_column(c, overflow="fold", no_wrap=c in no_wrap, ratio=(ratio or {}).get(c))
    breaks = set(sections)
    for i, r in enumerate(rows):
        if i in breaks and i:
            t.add_section()
        t.add_row(*[Text("\n".join(visible(x) for x in Cell.of(v).lines),
                         style=Cell.of(v).style) for v in r])
    console.print(t)


def emit_document(console: Console, doc: Any, fmt: str) -> None:
    """``doc`` as JSON (indented, one document) or YAML, written as it is: no markup, no
    wrapping, no colour."""
    if fmt == "json":
        console.file.write(json.dumps(doc, indent=2, default=str) + "\n")
    elif fmt == "yaml":
        import yaml

        console.file.write(yaml.safe_dump(doc, sort_keys=False))  # non-ASCII escaped
    else:  # pragma: no cover - the CLI offers only these
        raise ValueError(f"unknown document format {fmt!r}")
    console.file.flush()

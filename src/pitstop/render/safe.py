"""Text from data, made safe to print.

Names, messages and reasons come from fleet files, live clusters, journals and catalogs. Printed
as they are, a name can break or fake the output:

- rich markup: ``stg-gen-01[/nope]`` is a closing tag that matches nothing, and rich raises
  (the command used to end with "internal error"); ``[red]`` would colour what follows;
- control characters: ESC and BEL start terminal escape sequences (move the cursor, set the
  window title, rewrite what was printed), CR returns to the start of the line and hides what
  came before, and the bidirectional overrides (U+202E …) show text in another order than it
  is stored.

:func:`visible` replaces every character that is not printable (``str.isprintable``: control,
format, separator other than space, private-use and unassigned code points) with a visible
escape such as ``\\x1b`` or ``\\u202e``, so the text reads as it is stored. :func:`markup`
does that and also escapes rich markup, for text that goes into a rich ``print``.

Every place that prints data-derived text goes through one of the two.
"""

from __future__ import annotations

__all__ = ["markup", "visible"]


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: object, *, newlines: bool = False) -> str:
    """``text`` with every non-printable character shown as an escape (``\\x1b``, ``\\u202e``).
    With ``newlines``, line breaks are kept (for multi-line messages) and everything else is
    escaped as usual."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() or (newlines and c == "\n") else _escape(c) for c in s)


def markup(text: object, *, newlines: bool = False) -> str:
    """:func:`visible`, then rich markup escaped: safe inside a string given to
    ``Console.print`` (markup on), shown exactly as stored."""
    from rich.markup import escape

    return escape(visible(text, newlines=newlines))

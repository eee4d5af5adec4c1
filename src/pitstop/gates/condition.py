"""Success and failure conditions: a tiny, safe expression language (parsed, never ``eval``\\ ed).

Grammar (``result`` is the measured value; numbers are decimal, optionally signed, with an
optional exponent)::

    condition  := or
    or         := and { ("||" | "or") and }
    and        := not { ("&&" | "and") not }
    not        := ("!" | "not") not | "(" condition ")" | comparison
    comparison := operand ("<" | "<=" | ">" | ">=" | "==" | "!=") operand
    operand    := "result" | number          -- exactly one side of a comparison is "result"

Examples: ``result <= 0.01``, ``result >= 0.99 && result <= 1.0``, ``0.5 < result``,
``!(result > 100 || result < 0)``. A chained comparison (``0 < result < 1``) is refused: write
``result > 0 && result < 1``. Errors name the offending token and its column.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from pitstop.errors import PitstopError

__all__ = ["Condition", "ConditionError"]


class ConditionError(PitstopError, ValueError):
    """A condition that does not parse; the message names the bad token and its column."""

    exit_code = 2


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_WORDS = {"and": "&&", "or": "||", "not": "!"}

_TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|&&|\|\||[<>!()+-])
""", re.VERBOSE)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number | name | op | end
    text: str
    column: int  # 1-based


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            char = text[pos]
            hint = {"=": " (did you mean '=='?)", "&": " (did you mean '&&'?)",
                    "|": " (did you mean '||'?)"}.get(char, "")
            raise ConditionError(
                f"condition {text!r}: unexpected character {char!r} at column {pos + 1}{hint}")
        kind = m.lastgroup or ""
        if kind != "space":
            word = m.group()
            if kind == "name" and word.lower() in _WORDS:
                kind, word = "op", _WORDS[word.lower()]
            out.append(_Token(kind, word, pos + 1))
        pos = m.end()
    out.append(_Token("end", "", len(text) + 1))
    return out


# -- the syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compare:
    op: str  # result <op> bound
    bound: float

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.bound)


@dataclass(frozen=True, slots=True)
class _And:
    left: _Node
    right: _Node

    def holds(self, value: float) -> bool:
        return self.left.holds(value) and self.right.holds(value)


@dataclass(frozen=True, slots=True)
class _Or:
    left: _Node
    right: _Node

    def holds(self, value: float) -> bool:
        return self.left.holds(value) or self.right.holds(value)


@dataclass(frozen=True, slots=True)
class _Not:
    inner: _Node

    def holds(self, value: float) -> bool:
        return not self.inner.holds(value)


_Node = _Compare | _And | _Or | _Not


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, expected: str, token: _Token | None = None) -> ConditionError:
        t = token or self.tok
        found = "the end" if t.kind == "end" else repr(t.text)
        return ConditionError(
            f"condition {self.text!r}: expected {expected}, found {found} at column {t.column}")

    def take(self, *texts: str) -> _Token | None:
        if self.tok.kind == "op" and self.tok.text in texts:
            self.i += 1
            return self.tokens[self.i - 1]
        return None

    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise ConditionError(f"condition {self.text!r} is empty: expected a comparison "
                                 "such as 'result <= 0.01'")
        node = self.or_()
        if self.tok.kind != "end":
            expected = "'&&', '||' or the end"
            if self.tok.text in _OPS:
                expected += " (chained comparisons are not supported: join them with '&&')"
            raise self.fail(expected)
        return node

    def or_(self) -> _Node:
        node = self.and_()
        while self.take("||"):
            node = _Or(node, self.and_())
        return node

    def and_(self) -> _Node:
        node = self.not_()
        while self.take("&&"):
            node = _And(node, self.not_())
        return node

    def not_(self) -> _Node:
        if self.take("!"):
            return _Not(self.not_())
        if self.take("("):
            node = self.or_()
            if not self.take(")"):
                raise self.fail("')'")
            return node
        return self.comparison()

    def comparison(self) -> _Node:
        first = self.tok
        left = self.operand()
        op_tok = self.tok
        if not (op_tok.kind == "op" and op_tok.text in _OPS):
            raise self.fail("a comparison operator (<, <=, >, >=, ==, !=)")
        self.i += 1
        right = self.operand()
        if left is None and right is not None:
            return _Compare(op_tok.text, right)
        if left is not None and right is None:  # number <op> result: turn it around
            return _Compare(_FLIP[op_tok.text], left)
        if left is None:
            raise ConditionError(f"condition {self.text!r}: compares result with itself at "
                                 f"column {first.column}: compare it with a number")
        raise ConditionError(f"condition {self.text!r}: compares two numbers at column "
                             f"{first.column}: one side must be 'result'")

    def operand(self) -> float | None:
        """A number, or None for ``result``."""
        t = self.tok
        sign = 1.0
        if t.kind == "op" and t.text in "+-":
            sign = -1.0 if t.text == "-" else 1.0
            self.i += 1
            t = self.tok
            if t.kind != "number":
                raise self.fail("a number after the sign")
        if t.kind == "number":
            self.i += 1
            value = sign * float(t.text)
            if not math.isfinite(value):
                raise self.fail("a finite number", t)
            return value
        if t.kind == "name":
            if t.text != "result":
                raise ConditionError(f"condition {self.text!r}: unknown name {t.text!r} at "
                                     f"column {t.column}: the measured value is called 'result'")
            self.i += 1
            return None
        raise self.fail("'result' or a number")


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition over the measured value ``result``. Build it with :meth:`parse`."""

    text: str
    _root: _Node

    @classmethod
    def parse(cls, text: str) -> Condition:
        return cls(text.strip(), _Parser(text).parse())

    def holds(self, value: float) -> bool:
        """Whether the condition is true for ``result = value``."""
        return self._root.holds(value)

    def __str__(self) -> str:
        return self.text

"""The monitors' condition language: a small, safe expression over decoded arguments and flows.

Parsed once, at load, into a tree of :class:`Node` values, and evaluated against a mapping of
names; nothing is ever handed to ``eval``: the only operations are the ones below, on numbers,
strings, booleans and lists.

    amount > 5 ether and to not in [0x00000000000000000000000000000000000000aa]
    newOwner != previousOwner
    outflow >= 1e6 USDC or (failed and value > 0)

Grammar (lowest precedence first)::

    or   := and ("or" and)*            and := not ("and" not)*        not := "not" not | cmp
    cmp  := sum [("=="|"!="|"<"|"<="|">"|">="|"in"|"not in") sum]
    sum  := prod (("+"|"-") prod)*     prod := unary (("*"|"/"|"%") unary)*
    unary:= "-" unary | atom
    atom := NUMBER [UNIT] | STRING | ADDRESS | "true" | "false" | NAME ("." NAME | "[" or "]")*
            | "(" or ")" | "[" [or ("," or)*] "]"

Numbers are exact (``1.5 ether`` is 1500000000000000000 wei); a unit is ``wei``, ``gwei``,
``ether``/``eth``, or a token symbol given with its decimals (``1e6 USDC``). ``0x`` with 40 hex
digits is an address and 64 a 32-byte word (both compared case-insensitively); other ``0x``
literals are integers. Errors name the column: :class:`ExprError` at parse time,
:class:`EvalError` at run time (a missing name, a division by zero, comparing a string with a number).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any

MAX_LENGTH = 4000
MAX_DEPTH = 40  # parentheses, brackets, not and unary minus nested
MAX_TREE = 200  # operations deep in all (evaluation recurses once per level)
MAX_MAGNITUDE = 10**96  # no literal beyond this: 2**256 wei is ~1.2e77
UNITS = {"wei": 0, "gwei": 9, "ether": 18, "eth": 18}
KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_CTX = Context(prec=100)

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<hex>0[xX][0-9a-fA-F]+)
  | (?P<number>\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|[<>()\[\].,+\-*/%])
""", re.VERBOSE)


class ExprError(ValueError):
    """The expression does not parse; the message names the column."""


class EvalError(ValueError):
    """The expression could not be evaluated on these values (a missing name, a division by zero)."""


@dataclass(frozen=True, slots=True)
class Node:
    """One node of the tree: ``op`` is ``const``, ``name``, ``attr``, ``index``, ``list``, ``neg``,
    ``not``, ``and``, ``or``, or a comparison/arithmetic operator; ``col`` its column (1-based)."""

    op: str
    args: tuple[Any, ...]
    col: int


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    col: int


def _tokens(source: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ExprError(f"column {pos + 1}: unexpected character {source[pos]!r}")
        if m.lastgroup != "space":
            out.append(_Tok(m.lastgroup or "", m.group(), pos + 1))
        pos = m.end()
    out.append(_Tok("end", "", len(source) + 1))
    return out


class _Parser:
    def __init__(self, source: str, units: Mapping[str, int]) -> None:
        self.toks = _tokens(source)
        self.i = 0
        self.depth = 0
        self.units = {**UNITS, **units}

    def peek(self, text: str | None = None, kind: str | None = None) -> bool:
        t = self.toks[self.i]
        return (text is None or (t.text == text and t.kind in ("op", "name"))) and (kind is None or t.kind == kind)

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str) -> _Tok:
        if not self.peek(text):
            t = self.toks[self.i]
            raise ExprError(f"column {t.col}: expected {text!r}, found {t.text or 'the end'!r}")
        return self.take()

    def parse(self) -> Node:
        node = self.or_()
        t = self.toks[self.i]
        if t.kind != "end":
            raise ExprError(f"column {t.col}: unexpected {t.text!r}")
        return node

    def _nest(self, col: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"column {col}: nested more than {MAX_DEPTH} deep")

    def _chain(self, ops: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        """Left-associative ``operand (op operand)*``."""
        node = operand()
        while any(self.peek(op) for op in ops):
            t = self.take()
            node = Node(t.text, (node, operand()), t.col)
        return node

    def _prefix(self, op: str, operand: Callable[[], Node]) -> Node:
        """A prefix operator (``not``, unary ``-``) applied to ``operand``, nesting bounded."""
        t = self.take()
        self._nest(t.col)
        node = Node(op, (operand(),), t.col)
        self.depth -= 1
        return node

    def or_(self) -> Node:
        return self._chain(("or",), self.and_)

    def and_(self) -> Node:
        return self._chain(("and",), self.not_)

    def not_(self) -> Node:
        return self._prefix("not", self.not_) if self.peek("not") else self.cmp()

    def cmp(self) -> Node:
        node = self.sum()
        t = self.toks[self.i]
        if t.kind == "op" and t.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return Node(t.text, (node, self.sum()), t.col)
        if self.peek("in"):
            self.take()
            return Node("in", (node, self.sum()), t.col)
        if self.peek("not") and self.toks[self.i + 1].text == "in":
            self.i += 2
            return Node("not", (Node("in", (node, self.sum()), t.col),), t.col)
        return node

    def sum(self) -> Node:
        return self._chain(("+", "-"), self.prod)

    def prod(self) -> Node:
        return self._chain(("*", "/", "%"), self.unary)

    def unary(self) -> Node:
        return self._prefix("neg", self.unary) if self.peek("-") else self.atom()

    def atom(self) -> Node:
        t = self.take()
        if t.kind == "number":
            return Node("const", (self._number(t),), t.col)
        if t.kind == "hex":
            digits = t.text[2:].lower()
            if len(digits) in (40, 64):
                return Node("const", ("0x" + digits,), t.col)
            return Node("const", (self._bounded(int(digits, 16), t),), t.col)
        if t.kind == "string":
            return Node("const", (re.sub(r"\\(.)", r"\1", t.text[1:-1]),), t.col)
        if t.kind == "name" and t.text in ("true", "false"):
            return Node("const", (t.text == "true",), t.col)
        if t.kind == "name" and t.text not in KEYWORDS:
            return self._path(Node("name", (t.text,), t.col))
        if t.text in ("(", "["):
            self._nest(t.col)
            if t.text == "(":
                node = self.or_()
                self.expect(")")
            else:
                items = []
                if not self.peek("]"):
                    items.append(self.or_())
                    while self.peek(","):
                        self.take()
                        items.append(self.or_())
                self.expect("]")
                node = Node("list", tuple(items), t.col)
            self.depth -= 1
            return self._path(node) if t.text == "(" else node
        raise ExprError(f"column {t.col}: expected a value, found {t.text or 'the end'!r}")

    def _path(self, node: Node) -> Node:
        while self.peek(".") or self.peek("["):
            t = self.take()
            if t.text == ".":
                name = self.take()
                if name.kind not in ("name", "number"):
                    raise ExprError(f"column {name.col}: expected a field name after '.'")
                node = Node("attr", (node, name.text), t.col)
            else:
                self._nest(t.col)
                node = Node("index", (node, self.or_()), t.col)
                self.expect("]")
                self.depth -= 1
        return node

    def _number(self, t: _Tok) -> int | Decimal:
        try:
            value = Decimal(t.text.replace("_", ""), _CTX)
        except InvalidOperation:
            raise ExprError(f"column {t.col}: bad number {t.text!r}") from None
        if abs(value.adjusted()) > 100:
            raise ExprError(f"column {t.col}: number {t.text!r} out of range")
        nxt = self.toks[self.i]
        if nxt.kind == "name" and nxt.text not in KEYWORDS:
            if nxt.text not in self.units:
                known = ", ".join(sorted(self.units))
                raise ExprError(f"column {nxt.col}: unknown unit {nxt.text!r} (known: {known})")
            self.take()
            value = value.scaleb(self.units[nxt.text], _CTX)
        return self._bounded(int(value) if value == value.to_integral_value() else value, t)

    @staticmethod
    def _bounded(value: int | Decimal, t: _Tok) -> int | Decimal:
        if not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
            raise ExprError(f"column {t.col}: number {t.text!r} out of range")
        return value


def parse(source: str, units: Mapping[str, int] | None = None) -> Node:
    """The tree of ``source``; ``units``: token symbols and their decimals. Raises :class:`ExprError`.

    >>> evaluate(parse("amount >= 1.5 ether and to in [0x00000000000000000000000000000000000000AA]"),
    ...          {"amount": 2 * 10**18, "to": "0x00000000000000000000000000000000000000aa"})
    True
    """
    if not isinstance(source, str) or not source.strip():
        raise ExprError("column 1: empty expression")
    if len(source) > MAX_LENGTH:
        raise ExprError(f"column {MAX_LENGTH + 1}: longer than {MAX_LENGTH} characters")
    node = _Parser(source, units or {}).parse()
    depth = _depth(node)
    if depth > MAX_TREE:  # (a long chain such as 1+1+...+1 nests without parentheses)
        raise ExprError(f"column 1: {depth} operations deep; at most {MAX_TREE}")
    return node


def _depth(node: Node) -> int:
    """How deep the tree is (walked without recursion: the tree may be deep)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((a, d + 1) for a in n.args if isinstance(a, Node))
    return deepest


def names(node: Node) -> set[str]:
    """The root names the expression reads (checked against what a match provides, at load)."""
    if node.op == "name":
        return {node.args[0]}
    if node.op == "const":
        return set()
    found: set[str] = set()
    for arg in node.args:
        if isinstance(arg, Node):
            found |= names(arg)
    return found


def evaluate(node: Node, env: Mapping[str, Any]) -> Any:
    """The value of ``node`` with ``env``'s names; raises :class:`EvalError`."""
    op, args = node.op, node.args
    if op == "const":
        return args[0]
    if op == "name":
        if args[0] not in env:
            raise EvalError(f"column {node.col}: no value named {args[0]!r} here")
        return env[args[0]]
    if op == "and":
        return _truth(evaluate(args[0], env), node) and _truth(evaluate(args[1], env), node)
    if op == "or":
        return _truth(evaluate(args[0], env), node) or _truth(evaluate(args[1], env), node)
    if op == "not":
        return not _truth(evaluate(args[0], env), node)
    if op == "list":
        return [evaluate(a, env) for a in args]
    if op == "neg":
        return -_num(evaluate(args[0], env), node)
    if op == "attr":
        base = evaluate(args[0], env)
        if isinstance(base, Mapping) and args[1] in base:
            return base[args[1]]
        raise EvalError(f"column {node.col}: no field {args[1]!r}")
    if op == "index":
        base, key = evaluate(args[0], env), evaluate(args[1], env)
        try:
            return base[key] if isinstance(base, Mapping) else base[int(_num(key, node))]
        except (KeyError, IndexError, TypeError):
            raise EvalError(f"column {node.col}: no element {key!r}") from None
    return _binary(op, evaluate(args[0], env), evaluate(args[1], env), node)


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _binary(op: str, left: Any, right: Any, node: Node) -> Any:
    if op == "in":
        if not isinstance(right, list | tuple | str):
            raise EvalError(f"column {node.col}: 'in' needs a list or a string on its right")
        if isinstance(right, str):
            return isinstance(left, str) and left.lower() in right.lower()
        return any(_equal(left, item) for item in right)
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    a, b = _num(left, node), _num(right, node)
    if op in _ORDER:
        return _ORDER[op](a, b)
    if b == 0 and op in ("/", "%"):
        raise EvalError(f"column {node.col}: division by zero")
    try:
        with localcontext(_CTX):  # exact to 100 digits, whatever the thread's decimal context
            if op in _ARITHMETIC:
                return _ARITHMETIC[op](a, b)
            if op == "/":
                quotient = Decimal(a) / Decimal(b)
                return int(quotient) if quotient == quotient.to_integral_value() else quotient
            return a % b
    except ArithmeticError:  # beyond 100 digits (decimal.InvalidOperation, Overflow)
        raise EvalError(f"column {node.col}: {op} out of range") from None


def _truth(value: Any, node: Node) -> bool:
    if isinstance(value, bool):
        return value
    raise EvalError(f"column {node.col}: 'and', 'or' and 'not' need true or false, not {value!r}")


def _num(value: Any, node: Node) -> int | Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise EvalError(f"column {node.col}: {value!r} is not a number")
    return value


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)

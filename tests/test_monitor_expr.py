"""The monitors' expression language: what it computes, its errors (with the column), and that
hostile input never runs code or exhausts the process."""

from __future__ import annotations

import builtins
import contextlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.monitors.expr import EvalError, ExprError, evaluate, names, parse

A = "0x00000000000000000000000000000000000000aa"


@pytest.mark.parametrize(("source", "env", "want"), [
    ("amount > 5 ether", {"amount": 5 * 10**18 + 1}, True),
    ("amount > 5 ether", {"amount": 5 * 10**18}, False),
    ("amount >= 1.5 ether", {"amount": 15 * 10**17}, True),
    ("amount >= 1e6 USDC", {"amount": 10**12}, True),
    ("amount >= 1e6 USDC", {"amount": 10**12 - 1}, False),
    ("fee < 30 gwei", {"fee": 29 * 10**9}, True),
    ("to == 0x00000000000000000000000000000000000000AA", {"to": A}, True),
    ("to in [0x00000000000000000000000000000000000000aa, 0x00000000000000000000000000000000000000bb]", {"to": A}, True),
    ("to not in [0x00000000000000000000000000000000000000bb]", {"to": A}, True),
    ("not failed and (value > 0 or selector == '0x8456cb59')", {"failed": False, "value": 0, "selector": "0x8456cb59"},
     True),
    ("a + b * 2 == 7 and a - b == -1 and 7 % 4 == 3", {"a": 3, "b": 2}, False),
    ("a + b * 2 == 7 and b - a == -1", {"a": 3, "b": 2}, True),
    ("amount / 4 == 2.5", {"amount": 10}, True),
    ("tx.value > 0 and call.depth >= 1", {"tx": {"value": 1}, "call": {"depth": 2}}, True),
    ("ids[1] == 7", {"ids": [5, 7]}, True),
    ("'admin' in role", {"role": "the ADMIN role"}, True),
    ("0x10 == 16", {}, True),
    ("1_000 == 1000 and true and not false", {}, True),
])
def test_evaluates_what_a_security_engineer_writes(source: str, env: dict[str, Any], want: bool) -> None:
    assert evaluate(parse(source, {"USDC": 6}), env) is want


def test_names_lists_what_the_expression_reads() -> None:
    assert names(parse("amount > 1 ether and call.from != tx.from or x in [y, 1]")) == {"amount", "call", "tx", "x",
                                                                                         "y"}


@pytest.mark.parametrize(("source", "column", "words"), [
    ("amount >", 9, "expected a value"),
    ("amount > 5 foo", 12, "unknown unit 'foo'"),
    ("amount >> 5", 9, "expected a value"),
    ("(amount > 5", 12, "expected ')'"),
    ("amount > 5 )", 12, "unexpected ')'"),
    ("amount ! 5", 8, "unexpected character '!'"),
    ("__import__('os').system('id')", 11, "unexpected '('"),
    ("1e999 > 0", 1, "out of range"),
    ("", 1, "empty"),
])
def test_parse_errors_name_the_column(source: str, column: int, words: str) -> None:
    with pytest.raises(ExprError) as err:
        parse(source)
    assert f"column {column}" in str(err.value) and words in str(err.value)


@pytest.mark.parametrize(("source", "env", "words"), [
    ("amount / 0 > 1", {"amount": 1}, "division by zero"),
    ("amount > 1", {}, "no value named 'amount'"),
    ("to > 1", {"to": A}, "is not a number"),
    ("ids[5] == 1", {"ids": [1]}, "no element"),
    ("tx.nope == 1", {"tx": {}}, "no field 'nope'"),
    ("amount and true", {"amount": 1}, "need true or false"),
])
def test_runtime_errors_are_eval_errors(source: str, env: dict[str, Any], words: str) -> None:
    with pytest.raises(EvalError, match=words):
        evaluate(parse(source), env)


def test_nesting_and_length_are_bounded() -> None:
    with pytest.raises(ExprError, match="nested more than"):
        parse("(" * 200 + "1" + ")" * 200)
    with pytest.raises(ExprError, match="nested more than"):
        parse("not " * 200 + "true")
    with pytest.raises(ExprError, match="longer than"):
        parse("1 + " * 2000 + "1")
    with pytest.raises(ExprError, match="operations deep"):
        parse("1+" * 1500 + "1")  # evaluating it would recurse 1,500 deep
    assert evaluate(parse("1+" * 150 + "1 == 151"), {}) is True


_ATOMS = st.one_of(st.integers(-10**30, 10**30).map(str), st.sampled_from(["a", "b", "true", "false", "'s'", A]))


@st.composite
def _exprs(draw: Any, depth: int = 0) -> str:
    if depth > 3 or draw(st.booleans()):
        return str(draw(_ATOMS))
    op = draw(st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", ">=", "and", "or", "in"]))
    left, right = draw(_exprs(depth + 1)), draw(_exprs(depth + 1))
    if op == "in":
        right = f"[{right}]"
    return f"({left} {op} {right})"


@settings(max_examples=300, deadline=None)
@given(_exprs())
def test_generated_expressions_parse_and_evaluate_or_fail_cleanly(source: str) -> None:
    node = parse(source)
    try:
        value = evaluate(node, {"a": 3, "b": Decimal("2.5")})
    except EvalError:
        return
    assert isinstance(value, bool | int | Decimal | str | list)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_runs_code(source: str) -> None:
    """Any text either parses into a tree or raises ExprError; nothing reaches eval, exec or import."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("code ran")

    with pytest.MonkeyPatch.context() as m:
        for name in ("eval", "exec", "compile", "__import__"):
            m.setattr(builtins, name, refuse)
        try:
            node = parse(source)
        except ExprError:
            return
        with contextlib.suppress(EvalError):
            evaluate(node, {})

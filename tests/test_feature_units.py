"""Feature units: the contract every registered unit keeps, and a unit added from outside the
package reaching the scores' explanation and an alert with no other file changed."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from detectors import units
from detectors.engine import EngineConfig, ScoringEngine
from detectors.entities import EntityState, EntityView
from detectors.features import BlockContext, feature_names, trace_features, tx_features
from detectors.traversal import Step, Trace, walk
from detectors.units.base import EntityUnit, TraceUnit, TxUnit
from detectors.wallets import WalletBehaviour
from ingest import Block, CallFrame, FileBlockSource, Log, Receipt, Tx

A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40


def deep_tree(depth: int) -> CallFrame:
    frame = CallFrame(type="CALL", sender=B, to=C, input="0x70a08231" + "0" * 64, output="0x" + "0" * 64)
    for _ in range(depth - 1):
        frame = CallFrame(type="CALL", sender=B, to=B, input="0x12345678", calls=(frame,))
    return frame


def odd_transactions() -> list[Tx]:
    """Plain, missing fields, empty and one-frame trees, a failed call, a 10,000-deep tree."""
    return [
        Tx(hash="0x1", sender=A, to=B, value=10**18),
        Tx(hash="0x2", sender=None, to=None, value=None, input="0x"),
        Tx(hash="0x3", sender=A, to=B, input="0x12345678", trace=CallFrame(type="CALL", sender=A, to=B)),
        Tx(hash="0x4", sender=A, to=B, input="0xa9059cbb", trace=CallFrame(type="CALL", sender=A, to=B,
                                                                             input="0xa9059cbb", error="revert")),
        Tx(hash="0x5", sender=A, to=B, input="0x12345678", trace=deep_tree(10_000),
           receipt=Receipt(tx_hash="0x5", status=1, gas_used=21000, effective_gas_price=10**9,
                           logs=(Log(address=C, topics=(), data="0x"),))),
    ]


@pytest.fixture(scope="module")
def dev_transactions(data_dir: Path) -> list[tuple[Tx, BlockContext]]:
    return [(tx, BlockContext.of(b)) for b in FileBlockSource([data_dir / "attacks-dev.jsonl.gz"])
            for tx in b.transactions][:600]


def all_units() -> list[object]:
    return [*units.TX_UNITS, *units.TRACE_UNITS, *units.ENTITY_UNITS]


@pytest.fixture(params=all_units(), ids=lambda u: type(u).__name__)
def unit(request: pytest.FixtureRequest) -> object:
    return request.param


def run_unit(unit: object, tx: Tx, ctx: BlockContext | None, view: EntityView | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(unit, TxUnit):
        unit.compute(tx, ctx, out)
    elif isinstance(unit, TraceUnit):
        if tx.trace is not None:
            trace = walk(tx, tx.trace, ctx.producer if ctx else None, view)
            unit.compute(trace, trace.of_kinds(unit.kinds), out)
    else:
        assert isinstance(unit, EntityUnit) and view is not None
        unit.compute(tx, out, view, 0.0)
    return out


def a_view(warm: bool) -> EntityView:
    state, wallets = EntityState(), WalletBehaviour()
    view = EntityView(state, wallets)
    if warm:
        for i in range(250):
            tx = Tx(hash=f"0x{i:x}", sender=A, to=B, value=1, input="0x12345678")
            state.learn(tx)
            wallets.learn_tx(tx, float(i))
    return view


def test_names_are_unique_and_known_to_the_rules(unit: object) -> None:
    names = unit.names  # type: ignore[attr-defined]
    assert names and len(set(feature_names())) == len(feature_names())
    assert set(names) <= set(feature_names())


def test_results_are_finite_floats_of_its_own_names_and_deterministic(unit: object, dev_transactions: list) -> None:
    view = a_view(warm=True)
    for tx, ctx in [*dev_transactions, *[(t, None) for t in odd_transactions()]]:
        got = run_unit(unit, tx, ctx, view)
        assert set(got) <= set(unit.names), (type(unit).__name__, set(got) - set(unit.names))  # type: ignore[attr-defined]
        assert all(isinstance(v, float) and math.isfinite(v) for v in got.values()), got
        assert got == run_unit(unit, tx, ctx, view), "the same transaction, the same features"


@pytest.mark.parametrize("kind_unit", [u for u in units.TRACE_UNITS if u.kinds is not None],
                         ids=lambda u: type(u).__name__)
def test_a_trace_unit_writes_zeros_for_a_tree_without_its_kinds(kind_unit: TraceUnit) -> None:
    """What lets the walk skip it: a unit naming kinds, given no step of them, writes 0 for each."""
    unit = kind_unit
    tx = odd_transactions()[2]
    assert tx.trace is not None
    trace = walk(tx, tx.trace)
    out: dict[str, float] = {}
    unit.compute(trace, [], out)
    assert out == dict.fromkeys(unit.names, 0.0)


def test_entity_units_say_nothing_of_a_cold_stream() -> None:
    cold = a_view(warm=False)
    tx = Tx(hash="0x9", sender=A, to=B, value=1, input="0x12345678")
    for unit in units.ENTITY_UNITS:
        out: dict[str, float] = {}
        unit.compute(tx, out, cold, 0.0)
        assert out == {}, type(unit).__name__  # nothing learned yet: absent, not "new"


def test_a_deep_tree_is_walked_without_recursion() -> None:
    tx = odd_transactions()[4]
    f = tx_features(tx)
    assert f["depth"] == 9_999.0 and f["frames"] == 10_000.0 and f["balance_checks"] == 1.0


# -- a unit from outside the package: from nothing to an alert with its explanation ----------

PERMIT = "0xd505accf"  # permit(address owner, address spender, uint256 value, uint256 deadline, v, r, s)


class ForeignPermits(TraceUnit):
    """``foreign_permits``: ERC-2612 permits of an owner outside the originator's side, used in the
    transaction (a signed approval phished from its owner, then spent)."""

    names = ("foreign_permits",)
    kinds = frozenset({"permit"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        n = 0
        for step in steps:
            owner = "0x" + step.frame.input[34:74]
            if step.ok and not trace.mine(owner, step):
                n += 1
        out["foreign_permits"] = float(n)


RULES = """
version: 1
evidence:
  - {feature: foreign_permits, transform: present, weight: 1.5, why: "a third party's signed permit used"}
rules:
  - name: permit-drain
    when: {foreign_permits: ">= 1", third_party_pulls: ">= 1"}
    severity: high
    type: scam
    title: Tokens pulled with a phished permit
    min_score: 0.3
"""


@pytest.fixture
def permits() -> Iterator[None]:
    units.register(ForeignPermits(), kinds={"permit": frozenset({PERMIT})})
    yield
    units.unregister("foreign_permits")


def word(value: str | int) -> str:
    return (value[2:] if isinstance(value, str) else f"{value:x}").rjust(64, "0")


def test_a_unit_registered_from_a_test_reaches_the_explanation_and_an_alert(permits: None, tmp_path: Path) -> None:
    rules = tmp_path / "permits.yaml"
    rules.write_text(RULES)
    engine = ScoringEngine(EngineConfig(rules_files=(str(rules),)))
    victim, token, drainer, bot = "0x" + "1" * 40, "0x" + "2" * 40, "0x" + "3" * 40, "0x" + "4" * 40
    trace = CallFrame(type="CALL", sender=drainer, to=bot, input="0x12345678", calls=(
        CallFrame(type="CALL", sender=bot, to=token, input=PERMIT + word(victim) + word(bot) + word(10**21) + word(0)),
        CallFrame(type="CALL", sender=bot, to=token,
                  input="0x23b872dd" + word(victim) + word(drainer) + word(10**21)),))
    tx = Tx(hash="0x" + "ab" * 32, sender=drainer, to=bot, value=0, input="0x12345678", trace=trace)
    [score] = engine.score_block(Block(number=1, hash="0x" + "cd" * 32, timestamp=1, transactions=(tx,)))
    assert "permit-drain" in score.rules
    assert any(c.feature == "foreign_permits" and c.value == 1.0 for c in score.explanation)
    assert score.finding is not None and score.finding.detector == "rules/permit-drain"
    assert "a third party's signed permit used (foreign_permits=1)" in score.finding.description
    ordinary = Tx(hash="0x" + "ef" * 32, sender=victim, to=token, value=0, input=PERMIT + word(victim) + word(bot),
                  trace=CallFrame(type="CALL", sender=victim, to=token, input=PERMIT + word(victim) + word(bot)))
    assert tx_features(ordinary)["foreign_permits"] == 0.0  # the owner's own permit


def test_registering_refuses_a_taken_name_or_an_unknown_kind() -> None:
    class Frames(TraceUnit):
        names = ("frames",)

    with pytest.raises(ValueError, match="feature 'frames' is already registered"):
        units.register(Frames())

    class Unknown(TraceUnit):
        names = ("new_thing",)
        kinds = frozenset({"no_such_kind"})

    with pytest.raises(ValueError, match="unknown selector kind 'no_such_kind'"):
        units.register(Unknown())
    assert "new_thing" not in feature_names()
    out: dict[str, float] = {}
    tx = odd_transactions()[2]
    trace_features(tx, out)
    assert "new_thing" not in out


def test_a_teams_own_unit_module_is_loaded_from_the_config(data_dir: Path, tmp_path: Path) -> None:
    """``detectors.unit_modules``: a module outside the package registers its units before the
    engine is built, so the team's rule file can use their features."""
    from tests.test_cli import run_cli

    (tmp_path / "team_units.py").write_text(
        "from detectors import units\n"
        "from tests.test_feature_units import PERMIT, ForeignPermits\n"
        "units.register(ForeignPermits(), kinds={'permit': frozenset({PERMIT})})\n")
    rules = tmp_path / "permits.yaml"
    rules.write_text(RULES)
    config = tmp_path / "c.yaml"
    config.write_text(f"detectors:\n  unit_modules: [team_units]\n  rule_files: [{rules}]\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])])}
    res = run_cli("replay", str(data_dir / "attacks-dev.jsonl.gz"), "--config", str(config), "--no-progress", env=env)
    assert res.returncode == 0, res.stderr
    config.write_text(f"detectors:\n  rule_files: [{rules}]\n")  # the module left out: its feature is unknown
    res = run_cli("replay", str(data_dir / "attacks-dev.jsonl.gz"), "--config", str(config), "--no-progress", env=env)
    assert res.returncode == 2 and "unknown feature 'foreign_permits'" in res.stderr
    config.write_text("detectors:\n  unit_modules: [team_unitz]\n")
    res = run_cli("replay", str(data_dir / "attacks-dev.jsonl.gz"), "--config", str(config), "--no-progress", env=env)
    assert res.returncode == 2 and "detectors.unit_modules: cannot import 'team_unitz'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1

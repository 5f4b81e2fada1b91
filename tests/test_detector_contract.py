"""The contract every registered detector keeps (in the style of river's ``check_estimator``).

Run over every entry of ``detectors.registry.DETECTORS``, built from a small configuration so the
online models warm up within the test: scores are finite or absent (``None``), the same seed and
stream give the same scores, learned state round-trips through a snapshot, empty batches, plain
transfers, one-frame and 10,000-deep call trees and missing features are scored without error,
and warm-up is explicit.
"""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Sequence

import pytest

from detectors.base import Batch, Detector, Score
from detectors.engine import engine_rules
from detectors.features import FEATURES, tx_features
from detectors.registry import DETECTORS
from detectors.settings import EngineConfig
from ingest import CallFrame, Tx

SMALL = EngineConfig(seed=7, hst_window=50, pyod_window=300, pyod_refit_every=150, pyod_min_fit=150)
A, B = "0x" + "a" * 40, "0x" + "b" * 40


def make(name: str) -> Detector:
    return DETECTORS[name](SMALL, engine_rules(SMALL))


def synthetic(n: int, seed: int) -> list[dict[str, float]]:
    """Feature dicts shaped like ordinary traffic with call trees, with occasional heavy ones."""
    return [f for _, f in synthetic_txs(n, seed)]


def synthetic_txs(n: int, seed: int) -> list[tuple[Tx, dict[str, float]]]:
    """Transactions calling one of five contracts, each paying its caller ETH from inside its call
    tree, with their features: shaped like ordinary traffic, with occasional heavy ones."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        heavy = rng.random() < 0.02
        f = {name: float(rng.randint(0, 40 if heavy else 4)) for name in FEATURES[6:27]}
        f["frames"] = float(rng.randint(2, 60 if heavy else 8))
        f["value_eth"] = rng.random() * (100 if heavy else 1)
        f["calldata_bytes"] = float(rng.choice([0, 36, 68, 132]))
        vault = "0x" + f"{rng.randrange(5):040x}"
        pay = CallFrame(type="CALL", sender=vault, to=A, value=int(rng.lognormvariate(40, 1 + 3 * heavy)))
        trace = CallFrame(type="CALL", sender=A, to=vault, input="0x2e1a7d4d", calls=(pay,))
        out.append((Tx(hash=f"0x{seed:x}{k:x}", sender=A, to=vault, input="0x2e1a7d4d", trace=trace), f))
    return out


def batches(rows: list[dict[str, float]] | list[tuple[Tx, dict[str, float]]], size: int = 5) -> list[Batch]:
    """The rows in batches of ``size`` (feature dicts alone: no transactions behind them)."""
    txs = [r[0] if isinstance(r, tuple) else None for r in rows]
    feats = [r[1] if isinstance(r, tuple) else r for r in rows]
    return [Batch(txs[i : i + size], feats[i : i + size]) for i in range(0, len(rows), size)]


def run(d: Detector, stream: Sequence[Batch]) -> list[float | None]:
    """Score then learn every batch, as the engine does; the raw scores in order."""
    out: list[float | None] = []
    for batch in stream:
        scores = d.score_many(batch)
        assert len(scores) == batch.size
        out += [None if s is None else s.raw for s in scores]
        d.learn_many(batch, range(batch.size))
    return out


def deep_tree(depth: int) -> CallFrame:
    frame = CallFrame(type="CALL", sender=B, to=B, input="0x12345678")
    for _ in range(depth - 1):
        frame = CallFrame(type="CALL", sender=B, to=B, input="0x12345678", calls=(frame,))
    return frame


@pytest.fixture(params=sorted(DETECTORS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_keeps_the_protocol(name: str) -> None:
    d = make(name)
    assert isinstance(d, Detector) and d.name == name and isinstance(d.calibrated, bool)


def test_scores_are_finite_deterministic_and_warm_up_is_explicit(name: str) -> None:
    a, b = make(name), make(name)
    was_cold = not a.warm
    stream = batches(synthetic_txs(600, seed=1))
    got = run(a, stream)
    assert got == run(b, stream), "same seed, same stream, same scores"
    scored = [s for s in got if s is not None]
    assert scored and all(math.isfinite(s) for s in scored)
    assert a.warm, "warm after enough data"
    if a.calibrated:
        assert was_cold, "a model learned from the stream starts cold, and says so"
        assert got[0] is None, "a cold detector gives no score (absent, not 'normal')"


def test_state_round_trips(name: str) -> None:
    a = make(name)
    stream = batches(synthetic_txs(500, seed=2))
    run(a, stream[:80])
    b = make(name)
    b.load_state(pickle.loads(pickle.dumps(a.state())))
    assert run(a, stream[80:]) == run(b, stream[80:])


def test_odd_input_is_scored_without_error(name: str) -> None:
    d = make(name)
    run(d, batches(synthetic_txs(400, seed=3)))
    assert d.score_many(Batch([], [])) == []
    plain = Tx(hash="0x1", sender=A, to=B, value=10**18)
    one = Tx(hash="0x2", sender=A, to=B, value=0, input="0x", trace=CallFrame(type="CALL", sender=A, to=B))
    deep = Tx(hash="0x3", sender=A, to=B, input="0x12345678", trace=deep_tree(10_000))
    rows = [tx_features(plain), tx_features(one), tx_features(deep), {}, {"frames": 3.0}]
    assert rows[2]["depth"] == 9_999.0
    batch = Batch([plain, one, deep, plain, plain], rows)
    scores = d.score_many(batch)
    assert all(s is None or (isinstance(s, Score) and math.isfinite(s.raw)) for s in scores)
    if d.calibrated:
        assert scores[0] is None and scores[1] is None, "no call tree to read: no score"
    d.learn_many(batch, range(batch.size))
    assert isinstance(d.explain(rows[2]), list) and isinstance(d.explain({}), list)

"""Per-address behaviour baselines (detectors/baseline.py): a contract's outflow far above its own
history scores and alerts, explained by the contract and the ratio; the same outflow from a contract
whose history has such outflows does not."""

from __future__ import annotations

import pickle
import random

from detectors.baseline import BaselineDetector, short
from detectors.engine import EngineConfig, ScoringEngine
from ingest import Block, CallFrame, Tx

WEI = 10**18
VAULT, WHALE_VAULT = "0x" + "5a" * 20, "0x" + "5b" * 20
USERS = ["0x" + f"{i + 1:040x}" for i in range(40)]


def withdrawal(k: int, vault: str, user: str, amount: int) -> Tx:
    """``user`` calls ``vault.withdraw``, which pays it ``amount`` wei from inside the call tree."""
    pay = CallFrame(type="CALL", sender=vault, to=user, value=amount)
    trace = CallFrame(type="CALL", sender=user, to=vault, input="0x2e1a7d4d" + f"{amount:064x}", calls=(pay,))
    return Tx(hash=f"0x{k:064x}", sender=user, to=vault, input=trace.input, trace=trace)


LARGE = 250 * WEI  # 50x the largest ordinary withdrawal (at most ~5 ETH)


def ordinary(rng: random.Random, n: int, vault: str, start: int = 0, whale_every: int = 0) -> list[Tx]:
    """``n`` withdrawals of about 1 ETH (log-normal, at most 5); every ``whale_every``-th pays ``LARGE``."""
    return [withdrawal(start + k, vault, rng.choice(USERS), LARGE if whale_every and k % whale_every == 0
                       else int(min(5.0, rng.lognormvariate(0, 0.5)) * WEI)) for k in range(n)]


def blocks(txs: list[Tx], per_block: int = 4, first: int = 1) -> list[Block]:
    return [Block(number=first + i, hash=f"0x{first + i:064x}", timestamp=1_700_000_000 + 12 * (first + i),
                  transactions=txs[k : k + per_block]) for i, k in enumerate(range(0, len(txs), per_block))]


def test_an_outflow_far_above_the_contracts_history_scores_above_all_and_is_explained() -> None:
    rng = random.Random(1)
    d = BaselineDetector()
    from detectors.base import Batch

    raws = []
    for block in blocks(ordinary(rng, 400, VAULT)):
        batch = Batch(block.transactions, [{"frames": 2.0}] * len(block.transactions))
        raws += [s.raw for s in d.score_many(batch) if s is not None]
        d.learn_many(batch, range(batch.size))
    drain = withdrawal(10_000, VAULT, USERS[0], LARGE)
    [score] = d.score_many(Batch([drain], [{"frames": 2.0}]))
    assert score is not None and raws and score.raw > max(raws)
    top = score.explanation[0]
    assert top.feature == "outflow_vs_p99" and top.value >= 50
    assert short(VAULT) in top.why and f"{top.value:.0f}x its 99th percentile" in top.why
    # learned state survives a snapshot
    again = BaselineDetector()
    again.load_state(pickle.loads(pickle.dumps(d.state())))
    [same] = again.score_many(Batch([drain], [{"frames": 2.0}]))
    assert same is not None and same.raw == score.raw


def test_the_same_outflow_alerts_only_on_the_contract_that_never_pays_that_much() -> None:
    engine = ScoringEngine(EngineConfig())
    rng = random.Random(2)
    history = ordinary(rng, 300, VAULT) + ordinary(rng, 300, WHALE_VAULT, start=1_000, whale_every=25)
    rng.shuffle(history)
    scored = [s for block in blocks(history) for s in engine.score_block(block)]
    assert not [s for s in scored if s.finding is not None], "ordinary withdrawals alert nothing"
    last = len(history) // 4 + 1
    [usual] = engine.score_block(blocks([withdrawal(20_000, WHALE_VAULT, USERS[1], LARGE)], first=last + 1)[0])
    [drain] = engine.score_block(blocks([withdrawal(20_001, VAULT, USERS[1], LARGE)], first=last + 2)[0])
    assert usual.finding is None and usual.detectors.get("baseline", 0.0) == 0.0
    assert drain.finding is not None and drain.score > usual.score
    assert any(short(VAULT) in c.why for c in drain.finding.explanation)

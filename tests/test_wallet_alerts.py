"""Wallet behaviour alerts (detectors/wallet_alerts.py): a collection account's behaviour raises a
``scam`` alert about the wallet, once per cooldown, explained; an ordinary wallet, a contract, and any
wallet before the stream has watched long enough raise none; the evaluation counts them per account."""

from __future__ import annotations

from alerts.model import alert_from_finding
from detectors.engine import EngineConfig, ScoringEngine
from detectors.evaluate import evaluate_accounts
from ingest import Block, Tx

DAY = 86400.0
WEI = 10**18
T0 = 1_600_000_000
SCAM, ORDINARY, HOLDER = "0x" + "5c" * 20, "0x" + "0d" * 20, "0x" + "ee" * 20
VICTIMS = ["0x" + f"{i + 1:040x}" for i in range(30)]


def block(n: int, t: float, txs: list[Tx]) -> Block:
    return Block(number=n, hash=f"0x{n:064x}", timestamp=int(t), transactions=txs)


def pay(k: int, sender: str, to: str, eth: float, data: str = "0x") -> Tx:
    return Tx(hash=f"0x{k:064x}", sender=sender, to=to, value=int(eth * WEI), input=data)


def stream(scam_starts: float) -> list[Block]:
    """An ordinary wallet paying and being paid now and then over 30 days; from ``scam_starts`` on,
    30 victims each send the scam account a small payment within hours, which it sweeps on."""
    blocks, k, n = [], 0, 1
    for day in range(30):
        t = T0 + day * DAY
        txs = [pay(k := k + 1, ORDINARY, HOLDER, 2.0), pay(k := k + 1, HOLDER, ORDINARY, 1.5)]
        if t >= T0 + scam_starts:
            txs += [pay(k := k + 1, v, SCAM, 0.05) for v in VICTIMS[day % 3 :: 3]]
            txs.append(pay(k := k + 1, SCAM, HOLDER, 0.5))
        blocks.append(block(n := n + 1, t, txs))
    return blocks


def wallet_alerts(engine: ScoringEngine, blocks: list[Block]) -> list[tuple[float, str, str]]:
    """(chain time, wallet, type) of each wallet finding; each one's alert is about the wallet."""
    out = []
    for b in blocks:
        for s in engine.score_block(b):
            for f in s.wallet_findings:
                alert = alert_from_finding(f, 1, float(b.timestamp or 0))
                assert alert.tx_hash is None and alert.subject == f.addresses[-1] and alert.detector == "wallet"
                assert s.tx_hash in alert.description and alert.explanation, "after which transaction, and why"
                out.append((float(b.timestamp or 0), f.addresses[-1], f.type))
    return out


def test_a_collection_account_alerts_once_about_the_wallet_and_an_ordinary_one_never() -> None:
    engine = ScoringEngine(EngineConfig(wallet_cooldown=60 * DAY))
    alerts = wallet_alerts(engine, stream(scam_starts=10 * DAY))
    assert [(a, t) for _, a, t in alerts] == [(SCAM, "scam")], "once per wallet per cooldown"
    why = {c.feature for c in engine.wallet.explain(SCAM)}
    assert {"avg_payment_in_eth", "span_days"} <= why


def test_no_wallet_alert_before_the_stream_has_watched_long_enough() -> None:
    early = wallet_alerts(ScoringEngine(), stream(scam_starts=0.0))
    assert early and all(t >= T0 + 7 * DAY for t, _, _ in early), "nothing in the first 7 days of chain time"
    scored_early = ScoringEngine()
    for b in stream(scam_starts=0.0)[:7]:
        scored_early.score_block(b)
    assert scored_early.wallet.score(SCAM) >= scored_early.wallet_alerts.threshold, "the score was there already"


def test_a_contract_is_not_a_wallet() -> None:
    blocks = stream(scam_starts=10 * DAY)
    for b in blocks:  # the scam address is called with a function each time: a contract
        b.transactions[:] = [t if t.to != SCAM else pay(int(t.hash, 16), t.sender or "", SCAM, 0.05, "0xd0e30db0")
                             for t in b.transactions]
    assert wallet_alerts(ScoringEngine(), blocks) == []


def test_evaluation_counts_wallet_alerts_per_account_not_per_transaction() -> None:
    scores = [{"tx_hash": "0x1", "score": 0.1, "wallets": {SCAM: 0.6, ORDINARY: 0.1}},
              {"tx_hash": "0x2", "score": 0.1, "wallets": {ORDINARY: 0.2, HOLDER: 0.1}}]
    alerts = [{"tx_hash": "0x1", "detector": "wallet", "addresses": [SCAM], "status": "firing"}]
    out = evaluate_accounts(scores, {SCAM: 1, ORDINARY: 0, HOLDER: 0}, alerts=alerts)
    assert out["alerts"] == {"alerted_accounts": 1, "labelled_alerted": 1.0, "ordinary_alerted": 0.0}

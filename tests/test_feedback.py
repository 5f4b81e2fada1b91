"""Learning from analysts (detectors/feedback.py): a false-positive verdict lowers the next similar
transaction below the alert threshold while unlike exploits still alert; the learned model survives
a snapshot; a critical rule is never lowered; reset forgets."""

from __future__ import annotations

import random
from pathlib import Path

from detectors.engine import ScoringEngine, TxScore
from detectors.feedback import FEEDBACK_TERM, pattern
from detectors.snapshot import load_snapshot, save_snapshot
from ingest import FileBlockSource
from tests.test_baseline import LARGE, USERS, blocks, ordinary, withdrawal

VAULT_A, VAULT_B = "0x" + "a1" * 20, "0x" + "b2" * 20


def warmed() -> ScoringEngine:
    """An engine that learned two vaults' ordinary withdrawals."""
    engine = ScoringEngine()
    rng = random.Random(3)
    history = ordinary(rng, 300, VAULT_A) + ordinary(rng, 300, VAULT_B, start=1_000)
    rng.shuffle(history)
    for block in blocks(history):
        engine.score_block(block)
    return engine


def terms(score: TxScore) -> list[tuple[str, float]]:
    return [(c.feature, c.contribution) for c in score.explanation]


def verdicts(engine: ScoringEngine, verdict: str) -> dict[str, float]:
    """A large withdrawal from vault A alerts; the analyst gives ``verdict`` on it. Its pattern."""
    [alerted] = engine.score_block(blocks([withdrawal(50_000, VAULT_A, USERS[2], LARGE)], first=500)[0])
    assert alerted.finding is not None
    engine.learn_verdict(terms(alerted), verdict)
    return pattern(terms(alerted))


def alerted(engine: ScoringEngine, data_dir: Path) -> dict[str, dict[str, float]]:
    """The transactions of attacks-dev that alert, with their patterns."""
    out = {}
    for block in FileBlockSource([data_dir / "attacks-dev.jsonl.gz"]):
        out |= {s.tx_hash: pattern(terms(s)) for s in engine.score_block(block) if s.finding is not None}
    return out


def test_a_false_positive_lowers_the_same_pattern_elsewhere_and_leaves_unlike_exploits(data_dir: Path,
                                                                                      tmp_path: Path) -> None:
    told, untold = warmed(), warmed()
    dismissed = verdicts(told, "false_positive")
    # the same pattern on another vault: below the threshold, and the explanation says why
    same = withdrawal(50_001, VAULT_B, USERS[3], LARGE)
    [lowered] = told.score_block(blocks([same], first=501)[0])
    [as_before] = untold.score_block(blocks([same], first=501)[0])
    assert as_before.finding is not None and lowered.finding is None
    assert lowered.score < told.config.alert_threshold <= as_before.score
    assert any(c.feature == FEEDBACK_TERM and c.contribution < 0 for c in lowered.explanation)
    # the model survives a restart (the snapshot) and can be reset
    save_snapshot(told, tmp_path / "s")
    restarted = ScoringEngine()
    load_snapshot(restarted, tmp_path / "s")
    assert restarted.feedback_summary() == told.feedback_summary()
    assert restarted.feedback_summary()["verdicts"]["false_positive"] == 1
    # exploits unlike that pattern (cosine under 0.5) alert as they would have without the verdict
    before, after = alerted(untold, data_dir), alerted(told, data_dir)
    unlike = {h for h, x in before.items() if sum(v * dismissed.get(k, 0.0) for k, v in x.items()) < 0.5}
    assert len(unlike) >= 30 and unlike <= set(after)
    restarted.reset_feedback()
    assert restarted.feedback_summary()["weights"] == {} and not restarted.feedback.active


def test_a_confirmation_raises_the_same_pattern_a_little_and_never_past_its_bound() -> None:
    told, untold = warmed(), warmed()
    for _ in range(5):
        verdicts(told, "true_positive")
    same = withdrawal(50_002, VAULT_B, USERS[3], LARGE)
    [raised] = told.score_block(blocks([same], first=501)[0])
    [as_before] = untold.score_block(blocks([same], first=501)[0])
    shift = next(c.contribution for c in raised.explanation if c.feature == FEEDBACK_TERM)
    assert 0 < shift <= told.feedback.max_raise and raised.score > as_before.score

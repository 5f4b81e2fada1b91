"""Detectors: one contract suite for every detector, fusion, engine determinism, snapshots, rules."""

from __future__ import annotations

import csv
import math
import pickle
import random
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detectors.base import Batch
from detectors.engine import EngineConfig, ScoringEngine, encode_scores
from detectors.features import tx_features
from detectors.fusion import Calibrator, Fuser, round6
from detectors.rules import RuleError, ShapeDetector, load_rules, parse_rules
from detectors.snapshot import SnapshotError, load_snapshot, save_snapshot
from detectors.wallets import WalletBehaviour
from detectors.window import PyodWindowDetector
from ingest import Block, CallFrame, FileBlockSource, Tx
from tests.test_detector_contract import synthetic


def test_missing_fields_are_not_a_signal() -> None:
    """A transaction without trace or receipt is scored on what it has; absence adds nothing."""
    plain = Tx(hash="0x" + "1" * 64, sender="0x" + "a" * 40, to="0x" + "b" * 40, value=10**17)
    traced = Tx(hash="0x" + "1" * 64, sender="0x" + "a" * 40, to="0x" + "b" * 40, value=10**17,
                trace=CallFrame(type="CALL", sender="0x" + "a" * 40, to="0x" + "b" * 40, value=10**17))
    f_plain, f_traced = tx_features(plain), tx_features(traced)
    assert "frames" not in f_plain and f_traced["frames"] == 1.0
    shape = ShapeDetector()
    assert [s.raw for s in shape.score_many(Batch([plain, traced], [f_plain, f_traced]))] == [0.0, 0.0]
    engine = ScoringEngine()
    [s] = engine.score_block(Block(number=1, transactions=(plain,)))
    assert s.score == 0.0 and s.finding is None


def test_calibrator_tail_and_fuser_leaves_cold_detectors_out() -> None:
    cal = Calibrator(window=1000, min_history=10)
    for v in range(1000):
        cal.update(float(v))
    assert cal.calibrate(10.0) < cal.calibrate(990.0) < cal.calibrate(5000.0) <= 1.0
    fuser = Fuser({"shape": 1.0, "hst": 1.0}, ("shape",), min_history=10)
    fused_cold, parts = fuser.fuse({"shape": 2.0, "hst": 99.0})  # hst: no history to calibrate against yet
    assert "hst" not in parts and 0 < fused_cold < 1
    assert fused_cold == fuser.fuse({"shape": 2.0})[0]


def test_rules_are_validated_with_clear_errors(tmp_path: Path) -> None:
    assert load_rules().rules and load_rules().evidence
    with pytest.raises(RuleError, match="unknown feature 'framez'"):
        parse_rules({"version": 1, "rules": [{"name": "x", "when": {"framez": ">= 3"}, "severity": "high",
                                               "type": "exploit"}]}, "r.yaml")
    with pytest.raises(RuleError, match="not 'OP NUMBER'"):
        parse_rules({"version": 1, "rules": [{"name": "x", "when": {"frames": "lots"}, "severity": "high",
                                               "type": "exploit"}]}, "r.yaml")
    with pytest.raises(RuleError, match="severity"):
        parse_rules({"version": 1, "rules": [{"name": "x", "when": {"frames": "> 1"}, "severity": "dire",
                                               "type": "exploit"}]}, "r.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\n")
    with pytest.raises(RuleError, match="version: 1"):
        load_rules(bad)
    with pytest.raises(RuleError, match="finite number"):
        parse_rules({"version": 1, "rules": [{"name": "x", "when": {"frames": ">= inf"}, "severity": "high",
                                               "type": "exploit"}]}, "r.yaml")
    with pytest.raises(RuleError, match="weight"):
        parse_rules({"version": 1, "evidence": [{"feature": "frames", "weight": "heavy"}]}, "r.yaml")


def test_compiled_rules_read_the_file_as_written() -> None:
    """The rule file is compiled to Python for speed: it must say exactly what the file says,
    checked here against a direct reading of the file on random feature dicts."""
    import math
    import operator
    import random

    rules = load_rules()
    ops = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
    names = sorted({e.feature for e in rules.evidence} | {f for r in rules.rules for f, _, _ in r.conditions})
    rng = random.Random(7)
    fired = set()
    for _ in range(3000):
        x = {n: float(rng.choice([0, 0, 1, 2, 3, 5, 8, 12, 50, 0.5])) for n in names if rng.random() < 0.6}
        want_rules = [r.name for r in rules.rules
                      if all(f in x and ops[op](x[f], n) for f, op, n in r.conditions)]
        assert [r.name for r in rules.matches(x)] == want_rules
        fired.update(want_rules)
        want: dict[str, float] = {}
        for e in rules.evidence:
            v = x.get(e.feature)
            if v is None:
                continue
            if e.transform == "zero":
                a = e.weight if v == 0 else 0.0
            elif v <= e.over:
                a = 0.0
            else:
                a = e.weight if e.transform == "present" else e.weight * math.log1p(v - e.over)
            if a:
                want[e.feature] = want.get(e.feature, 0.0) + a
        for group, cap in rules.caps.items():  # a group's positive terms add up to at most its cap
            members = [e.feature for e in rules.evidence if e.group == group and want.get(e.feature, 0) > 0]
            total = sum(want[m] for m in members)
            for m in members:
                want[m] *= min(1.0, cap / total)
        got = rules.contributions(x)
        assert {c.feature: c.contribution for c in got} == pytest.approx(want)
        assert [c.contribution for c in got] == sorted((c.contribution for c in got), reverse=True)
        # assess() runs a pair compiled for exactly the features present: the same answers
        special, matched = rules.assess(x)
        assert [r.name for r in matched] == want_rules
        assert [c for c in special if not c.feature.startswith("rule:")] == got
    assert fired == {r.name for r in rules.rules}  # every rule was exercised
    assert len(rules._specialised) == 512  # bounded: the rest ran the general pair


def test_engine_scores_in_range_and_explains(data_dir: Path) -> None:
    engine = ScoringEngine()
    scores = [s for b in FileBlockSource([data_dir / "attacks-dev.jsonl.gz"]) for s in engine.score_block(b)]
    assert len(scores) == 2887
    assert all(0.0 <= s.score < 1.0 for s in scores)
    assert all(0.0 <= v <= 1.0 for s in scores for v in s.detectors.values())
    assert all(0.0 <= v < 1.0 for s in scores for v in s.wallets.values())
    top = max(scores, key=lambda s: s.score)
    assert top.finding is not None and top.explanation and top.finding.description
    assert {"shape", "hst"} <= set(top.detectors)
    # the score orders findings first: a rule that alerts below the threshold lifts its score
    found = [s for s in scores if s.finding is not None]
    by_rule = [s for s in found if s.finding is not None and s.finding.detector.startswith("rules/")]
    assert by_rule and found
    threshold = engine.config.alert_threshold
    assert min(s.score for s in found) >= threshold > max(s.score for s in scores if s.finding is None)
    assert all(s.finding is not None and s.finding.score == round(s.score, 6) for s in found)
    # the --scores lines: one encoder call gives what orjson gives for each score's to_json()
    assert encode_scores(scores) == b"".join(orjson.dumps(s.to_json()) + b"\n" for s in scores)
    lines = encode_scores(scores).splitlines()
    assert len(lines) == 2887 and orjson.loads(lines[0])["tx_hash"] == scores[0].tx_hash
    assert encode_scores([]) == b""


def test_new_attack_shapes_alert_on_a_warm_stream_through_a_familiar_router(data_dir: Path) -> None:
    """Shapes of exploits newer than the dev data, scored after the whole of attacks-dev: each
    alerts with its rule, above 99.9% of the file's ordinary transactions (as recall at 0.1% FPR
    counts), even when the contract
    abused is the file's most popular one (its familiarity offsets evidence); its ordinary
    look-alike in the same block does not alert."""
    engine = ScoringEngine()
    callers: dict[str, set[str]] = {}
    scores = []
    last = None
    for b in FileBlockSource([data_dir / "attacks-dev.jsonl.gz"]):
        scores += engine.score_block(b)
        last = b
        for t in b.transactions:
            if t.to is not None and t.sender is not None:
                callers.setdefault(t.to, set()).add(t.sender)
    assert last is not None
    with (data_dir / "attacks-dev.labels.csv").open() as fh:
        labels = {row["tx_hash"] for row in csv.DictReader(fh) if row["label"] == "1"}
    ordinary = sorted((s.score for s in scores if s.tx_hash not in labels), reverse=True)
    assert len(ordinary) == 2841
    bar = ordinary[2]  # 3 of 2,841 ordinary transactions at or above it: a 0.1% false-positive rate
    router = max(callers, key=lambda k: len(callers[k]))
    assert len(callers[router]) > 100

    def w(x: int | str) -> str:
        return (x[2:] if isinstance(x, str) else f"{x:x}").rjust(64, "0")

    eoa, bot, victim, token, chief, spell = ("0x" + c * 40 for c in "abcde9")

    def pull(caller: str, src: str, dest: str) -> CallFrame:
        return CallFrame(type="CALL", sender=caller, to=token, input="0x23b872dd" + w(src) + w(dest) + w(10**21))

    shapes = {
        # the attack contract calls the router's swap callback itself, naming a user as the payer
        "forged-callback": CallFrame(type="CALL", sender=bot, to=router, calls=(pull(router, victim, bot),),
                                     input="0xfa461e33" + w(10**21) + w(0) + w(victim)),
        # the router is handed a fake pool, which calls back the router's callback: a user pays
        "unpaid-pull": CallFrame(type="CALL", sender=bot, to=router, input="0x2646478b" + w(bot), calls=(
            CallFrame(type="CALL", sender=router, to=bot, input="0x128acb08" + w(bot), calls=(
                CallFrame(type="CALL", sender=bot, to=router, input="0xfa461e33" + w(5) + w(0),
                          calls=(pull(router, victim, bot),)),)),)),
        # a spell voted in and lifted to authority in one transaction
        "governance-in-one-transaction": CallFrame(type="CALL", sender=bot, to=chief, calls=(
            CallFrame(type="CALL", sender=bot, to=chief, input="0xed081329" + w(32) + w(1) + w(spell)),
            CallFrame(type="CALL", sender=bot, to=chief, input="0x3c278bd5" + w(spell))), input="0x4b64e492"),
        # look-alike: the router's swap, paid by the sender, calling back the router it was called by
        "ordinary": CallFrame(type="CALL", sender=bot, to=router, input="0x2646478b" + w(bot), calls=(
            CallFrame(type="CALL", sender=router, to=victim, input="0x128acb08" + w(router), calls=(
                CallFrame(type="CALL", sender=victim, to=router, input="0xfa461e33" + w(5) + w(0),
                          calls=(pull(router, eoa, victim),)),)),)),
    }
    txs = []
    for i, frame in enumerate(shapes.values()):
        root = CallFrame(type="CALL", sender=eoa, to=bot, input="0x12345678", calls=(frame,))
        txs.append(Tx(hash=f"0x{i + 1:064x}", sender=eoa, to=bot, value=0, input=root.input, trace=root))
    block = Block(number=last.number + 1, hash="0x" + "ee" * 32, timestamp=(last.timestamp or 0) + 12,
                  transactions=tuple(txs))
    got = dict(zip(shapes, engine.score_block(block), strict=True))
    for name in ("forged-callback", "unpaid-pull", "governance-in-one-transaction"):
        s = got[name]
        assert name in s.rules, (name, s.rules)
        assert s.finding is not None and s.finding.severity in ("high", "critical"), name
        assert s.score > bar, (name, s.score, bar)
    assert got["ordinary"].finding is None and got["ordinary"].rules == []


def test_snapshot_resume_gives_the_same_scores_as_one_run(data_dir: Path, tmp_path: Path) -> None:
    cfg = EngineConfig(pyod_window=400, pyod_refit_every=250, pyod_min_fit=200)  # ~860 trees of 2+ frames
    blocks = list(FileBlockSource([data_dir / "attacks-dev.jsonl.gz"]))
    whole = ScoringEngine(cfg)
    expected = [s.to_json() for b in blocks for s in whole.score_block(b)]
    assert whole.detector("pyod").refits >= 1  # type: ignore[union-attr]
    first = ScoringEngine(cfg)
    got = [s.to_json() for b in blocks[:7] for s in first.score_block(b)]
    save_snapshot(first, tmp_path / "snap.bin")
    second = ScoringEngine(cfg)
    load_snapshot(second, tmp_path / "snap.bin")
    got += [s.to_json() for b in blocks[7:] for s in second.score_block(b)]
    assert got == expected


def test_incompatible_snapshots_are_refused(tmp_path: Path) -> None:
    engine = ScoringEngine()
    save_snapshot(engine, tmp_path / "s.bin")
    with pytest.raises(SnapshotError, match=r"another detector configuration \(seed: 42 there, 1 here"):
        load_snapshot(ScoringEngine(EngineConfig(seed=1)), tmp_path / "s.bin")
    raw = (tmp_path / "s.bin").read_bytes()
    (tmp_path / "v9.bin").write_bytes(raw.replace(b'"version":3', b'"version":9', 1))
    with pytest.raises(SnapshotError, match="version 9; this build reads version 3"):
        load_snapshot(engine, tmp_path / "v9.bin")
    (tmp_path / "junk.bin").write_bytes(b"not a snapshot")
    with pytest.raises(SnapshotError, match="not a chainsentry detector snapshot"):
        load_snapshot(engine, tmp_path / "junk.bin")
    header, _, body = raw.partition(b"\n")
    (tmp_path / "cut.bin").write_bytes(header + b"\n" + body[:20])
    with pytest.raises(SnapshotError, match="damaged"):
        load_snapshot(engine, tmp_path / "cut.bin")


def test_a_snapshot_survives_new_rule_features_but_not_other_model_features(tmp_path: Path) -> None:
    """A feature only the rules read (added by a newer build, or gone) leaves the learned models
    valid; a change to what the tree model or the pyod window reads does not."""
    engine = ScoringEngine()
    save_snapshot(engine, tmp_path / "s.bin")
    header, _, body = (tmp_path / "s.bin").read_bytes().partition(b"\n")
    h = orjson.loads(header)
    assert h["model_features"]["window"][0] == "frames"
    # written before model features were recorded, by a build that had one rule feature fewer
    older = {k: v for k, v in h.items() if k != "model_features"}
    older["features"] = [f for f in h["features"] if f != "injected_pulls"]
    (tmp_path / "older.bin").write_bytes(orjson.dumps(older) + b"\n" + body)
    load_snapshot(ScoringEngine(), tmp_path / "older.bin")
    # the same, when that build lacked a feature the pyod window reads
    older["features"] = [f for f in h["features"] if f != "borrow_repay"]
    (tmp_path / "older2.bin").write_bytes(orjson.dumps(older) + b"\n" + body)
    with pytest.raises(SnapshotError, match="models of other features"):
        load_snapshot(ScoringEngine(), tmp_path / "older2.bin")
    # a newer header whose window reads other features
    h["model_features"]["window"] = [*h["model_features"]["window"], "liquidation_calls"]
    (tmp_path / "newer.bin").write_bytes(orjson.dumps(h) + b"\n" + body)
    with pytest.raises(SnapshotError, match="models of other features"):
        load_snapshot(ScoringEngine(), tmp_path / "newer.bin")


def test_wallet_collection_account_scores_above_an_ordinary_one() -> None:
    wb = WalletBehaviour()
    scam, user = "0x" + "5" * 40, "0x" + "6" * 40
    t = 1_600_000_000.0
    rng = random.Random(0)
    for i in range(30):  # victims pay small amounts within two days; the scam sweeps it on
        wb.learn_tx(Tx(hash=f"0x{i:064x}", sender=f"0x{i + 1:040x}", to=scam, value=10**17), t + i * 5000)
    wb.learn_tx(Tx(hash="0x" + "f" * 64, sender=scam, to="0x" + "7" * 40, value=29 * 10**17), t + 160_000)
    for i in range(30):  # an ordinary user: a few large payments over a year, contract calls
        wb.learn_tx(Tx(hash=f"0x{i + 100:064x}", sender=user, to=f"0x{rng.randrange(1, 9) + 50:040x}",
                       value=5 * 10**18, input="0xa9059cbb" + "0" * 128), t + i * 1_000_000)
        wb.learn_tx(Tx(hash=f"0x{i + 200:064x}", sender=f"0x{i + 300:040x}", to=user, value=20 * 10**18),
                    t + i * 1_000_000 + 7)
    assert wb.score(scam) > 0.4 > wb.score(user)
    assert {c.feature for c in wb.explain(scam)} >= {"span_days", "avg_payment_in_eth", "emptied"}
    assert "emptied" not in {c.feature for c in wb.explain(user)}  # it kept most of what it received
    for who in (scam, user):  # the explanation is what the score sums
        assert wb.score(who) == pytest.approx(1 - math.exp(-sum(c.contribution for c in wb.explain(who)) / 3))


def test_wallet_emptied_needs_everything_sent_on() -> None:
    wb = WalletBehaviour()
    mule, keeper, t = "0x" + "5" * 40, "0x" + "6" * 40, 1_600_000_000.0
    for k, (who, sent) in enumerate(((mule, 99 * 10**16), (keeper, 50 * 10**16))):
        wb.learn_tx(Tx(hash=f"0x{2 * k:064x}", sender="0x" + "1" * 40, to=who, value=10**18), t)
        assert "emptied" not in {c.feature for c in wb.explain(who)}  # nothing sent on yet
        wb.learn_tx(Tx(hash=f"0x{2 * k + 1:064x}", sender=who, to="0x" + "2" * 40, value=sent), t + 86400 * 200)
    assert [c.feature for c in wb.explain(mule)] == ["emptied"] and wb.explain(keeper) == []
    assert wb.score(mule) > 0 == wb.score(keeper)


def test_wallet_memory_is_bounded() -> None:
    wb = WalletBehaviour(max_wallets=100, max_counterparties=8)
    for i in range(1000):
        wb.learn_tx(Tx(hash=f"0x{i:064x}", sender=f"0x{i:040x}", to=f"0x{i % 3:040x}", value=1), float(i))
    assert len(wb) == 100
    assert wb.features(f"0x{1:040x}")["payers"] > 8  # counted past the cap, kept only up to it


def test_wallet_profiles_pickle_alike_compiled_or_not_and_from_older_snapshots() -> None:

    from detectors.wallets import Profile

    wb = WalletBehaviour()
    a, b = "0x" + "a" * 40, "0x" + "b" * 40
    wb.learn_tx(Tx(hash="0x" + "1" * 64, sender=a, to=b, value=3 * 10**17, input="0x12345678"), 1_600_000_000.0)
    p = wb.profiles[b]
    blob = pickle.dumps(p)
    assert b"_profile" in blob, "one pickled form for both builds (Profile.__reduce__)"
    q = pickle.loads(blob)
    assert [getattr(q, k) for k in Profile.__slots__] == [getattr(p, k) for k in Profile.__slots__]

    # how a profile was pickled before (default slot state): NEWOBJ of the class, BUILD (None, slots)
    state = pickle.dumps((None, {k: getattr(p, k) for k in Profile.__slots__}), protocol=2)[2:-1]
    older = b"\x80\x02cdetectors.wallets\nProfile\n)\x81" + state + b"b."
    old = pickle.loads(older)
    assert type(old) is Profile and [getattr(old, k) for k in Profile.__slots__] == [
        getattr(p, k) for k in Profile.__slots__]
    assert old.funder == a and old.recv_from == {a} and old.value_in == pytest.approx(0.3) and old.ins == 1


def _pairs(n: int, seed: int) -> tuple[list[int], list[float]]:
    rng = random.Random(seed)
    y = [1 if rng.random() < 0.2 else 0 for _ in range(n)]
    y[0], y[1] = 1, 0
    x = [round(rng.random() + (0.4 if lab else 0.0), 2) for lab in y]  # rounding makes ties
    return y, x


@pytest.mark.parametrize("seed", range(8))
def test_metrics_match_scikit_learn(seed: int) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from detectors.evaluate import average_precision, recall_at_fpr, roc_auc

    y, x = _pairs(300, seed)
    assert roc_auc(y, x) == pytest.approx(roc_auc_score(y, x), abs=1e-12)
    assert average_precision(y, x) == pytest.approx(average_precision_score(y, x), abs=1e-12)
    neg = sorted((s for s, lab in zip(x, y, strict=True) if not lab), reverse=True)
    thr = neg[int(0.05 * len(neg))]
    assert recall_at_fpr(y, x, 0.05) == sum(1 for s, lab in zip(x, y, strict=True) if lab and s > thr) / sum(y)


def test_bootstrap_intervals_are_stratified_seeded_and_narrow_with_more_data(tmp_path: Path) -> None:
    from detectors.evaluate import bootstrap, evaluate, roc_auc

    y, x = _pairs(300, 3)
    seen: list[tuple[int, int]] = []

    def counting(yy: list[int], xx: list[float]) -> float:
        seen.append((len(xx), sum(yy)))
        return roc_auc(yy, xx)

    ci = bootstrap(y, x, {"roc_auc": counting}, 300, seed=1)
    assert set(seen) == {(300, sum(y))}, "every resample keeps both classes' sizes"
    lo, hi = ci["roc_auc"]
    assert 0.0 <= lo < roc_auc(y, x) < hi <= 1.0
    assert bootstrap(y, x, {"roc_auc": roc_auc}, 300, seed=1)["roc_auc"] == [lo, hi], "seeded"
    assert bootstrap(y, x, {"roc_auc": roc_auc}, 300, seed=2)["roc_auc"] != [lo, hi]
    lo4, hi4 = bootstrap(y * 4, x * 4, {"roc_auc": roc_auc}, 300, seed=1)["roc_auc"]
    assert hi4 - lo4 < 0.7 * (hi - lo), "four times the data: about half the width"
    # through evaluate(), as `chainsentry evaluate --bootstrap` prints it
    import orjson

    (tmp_path / "s.jsonl").write_bytes(b"".join(
        orjson.dumps({"tx_hash": f"t{i}", "score": v, "block_number": i // 10, "detectors": {}, "wallets": {}}) + b"\n"
        for i, v in enumerate(x)))
    (tmp_path / "l.csv").write_text("tx_hash,label\n" + "".join(f"t{i},{lab}\n" for i, lab in enumerate(y)))
    got = evaluate(tmp_path / "s.jsonl", tmp_path / "l.csv", resamples=200)
    for name in ("roc_auc", "average_precision", "recall_at_0.1pct_fpr", "top3_in_block"):
        assert got["confidence_95"][name][0] <= got[name] <= got["confidence_95"][name][1], name
    assert "confidence_95" not in evaluate(tmp_path / "s.jsonl", tmp_path / "l.csv")


def _json(rows: list[dict[str, Any]]) -> list[str]:
    import orjson

    return [orjson.dumps(r).decode() for r in rows]


def test_contract_running_statistics_flag_an_unusually_large_tree() -> None:
    from detectors.entities import EntityState, EntityView

    def tx(i: int, frames: int) -> Tx:
        leaf = CallFrame(type="STATICCALL", sender="0x" + "b" * 40, to="0x" + "c" * 40)
        root = CallFrame(type="CALL", sender=f"0x{i:040x}", to="0x" + "b" * 40, input="0x12345678",
                         calls=(leaf,) * (frames - 1))
        return Tx(hash=f"0x{i:064x}", sender=f"0x{i:040x}", to="0x" + "b" * 40, input="0x12345678", trace=root)

    state = EntityState()
    state.seen = 1000  # a warm stream
    for i in range(40):
        t = tx(i, 2 + i % 3)
        state.learn(t, float(len(t.trace.walk())))  # type: ignore[union-attr]
    usual, huge = tx(100, 3), tx(101, 400)
    view = EntityView(state, WalletBehaviour())
    f_usual, f_huge = tx_features(usual, None, view), tx_features(huge, None, view)
    assert f_huge["frames"] == 400.0
    assert abs(f_usual["frames_z_on_contract"]) < 2 < f_huge["frames_z_on_contract"]
    assert f_huge["contract_callers_before"] == 32.0  # distinct callers, capped


def test_wallet_funding_source_is_the_first_payer() -> None:
    wb = WalletBehaviour()
    w, mixer, other = "0x" + "1" * 40, "0x" + "2" * 40, "0x" + "3" * 40
    wb.learn_tx(Tx(hash="0x" + "a" * 64, sender=mixer, to=w, value=10**18), 100.0)
    wb.learn_tx(Tx(hash="0x" + "b" * 64, sender=other, to=w, value=10**18), 200.0)
    assert wb.funder(w) == mixer and wb.age_days(w, 100.0 + 86400) == 1.0


def test_contract_creator_and_age_are_tracked() -> None:
    from detectors.entities import EntityState, EntityView
    from ingest import Receipt

    state = EntityState()
    attacker, other, made = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40
    deploy = Tx(hash="0x" + "1" * 64, sender=attacker, to=None, input="0x6000",
                receipt=Receipt(tx_hash="0x" + "1" * 64, status=1, contract_address=made))
    state.learn(deploy, None, now=1000.0)
    view = EntityView(state, WalletBehaviour())
    mine = tx_features(Tx(hash="0x" + "2" * 64, sender=attacker, to=made, input="0x12345678"), None, view, 2800.0)
    theirs = tx_features(Tx(hash="0x" + "3" * 64, sender=other, to=made, input="0x12345678"), None, view, 2800.0)
    assert mine["to_created_by_sender"] == 1.0 and mine["to_age_hours"] == 0.5
    assert theirs["to_created_by_sender"] == 0.0


def test_allowlisted_contracts_are_scored_but_make_no_findings(data_dir: Path) -> None:
    blocks = list(FileBlockSource([data_dir / "attacks-dev.jsonl.gz"]))
    plain = [s for b in blocks for s in ScoringEngine().score_block(b)]
    flagged = {s.tx_hash for s in plain if s.finding is not None}
    tx_to = {t.hash: t.to for b in blocks for t in b.transactions}
    target = next(tx_to[h] for h in sorted(flagged) if tx_to[h])
    engine = ScoringEngine()
    engine.allow(target)  # type: ignore[arg-type]
    allowed = [s for b in blocks for s in engine.score_block(b)]
    mine = [s for s in allowed if tx_to[s.tx_hash] == target]
    assert mine and all(s.finding is None for s in mine), "scored, but never a finding"
    assert all(s.score > 0 for s in mine)
    assert len(allowed) == len(plain) and any(s.finding is not None for s in allowed), "others still alert"


def test_live_refit_never_stalls_scoring_and_installs_when_ready() -> None:
    import threading

    gate = threading.Event()
    d = PyodWindowDetector(window=300, refit_every=150, min_fit=150, swap_after=10, seed=7, wait_for_fit=False)
    real_fit = d._fit

    def gated_fit(data: Any, box: Any) -> None:
        gate.wait(timeout=30)
        real_fit(data, box)

    d._fit = gated_fit  # type: ignore[method-assign]
    stream = synthetic(400, seed=5)
    for x in stream[:200]:  # past the swap point while the fit is still held back
        d.learn_one(x)
    assert not d.warm and d._pending is not None, "the learner went on without waiting"
    gate.set()
    d._pending[0].join()  # type: ignore[union-attr]
    d.learn_one(stream[200])
    assert d.warm and d.refits == 1, "installed at the next transaction once ready"


def test_top3_in_block_counts_every_transaction_and_says_its_ceiling() -> None:
    from detectors.evaluate import evaluate_transactions

    # block 1: four exploits score highest, then two ordinary; block 2: one exploit below three ordinary
    scores = [{"tx_hash": f"x{i}", "score": 0.9 - i / 100, "block_number": 1} for i in range(4)]
    scores += [{"tx_hash": f"o{i}", "score": 0.5 - i / 100, "block_number": 1} for i in range(2)]
    scores += [{"tx_hash": f"p{i}", "score": 0.8, "block_number": 2} for i in range(3)]
    scores += [{"tx_hash": "y", "score": 0.7, "block_number": 2}]
    labels = {s["tx_hash"]: int(s["tx_hash"][0] in "xy") for s in scores}
    got = evaluate_transactions(scores, labels)
    assert got["top3_in_block"] == 0.6  # x0, x1, x2 of five exploits
    assert got["top3_in_block_best_possible"] == 0.8  # 3 of block 1's four, and y
    assert got["top3_in_block_among_ordinary"] == 0.8  # y has three ordinary above it


def test_top3_in_block_orders_tied_scores_at_random_not_in_the_exploits_favour() -> None:
    from detectors.evaluate import evaluate_transactions

    # a constant scorer: every transaction of the block ties
    flat = [{"tx_hash": f"o{i}", "score": 0.0, "block_number": 1} for i in range(9)]
    flat.append({"tx_hash": "x", "score": 0.0, "block_number": 1})
    labels = {s["tx_hash"]: int(s["tx_hash"] == "x") for s in flat}
    got = evaluate_transactions(flat, labels)
    assert got["top3_in_block"] == 0.3 and got["top3_in_block_among_ordinary"] == 0.3  # 3 places of 10
    # one transaction above, the exploit tied with three ordinary: 2 of the 4 tied places are in the top 3
    tied = [{"tx_hash": "o0", "score": 0.9, "block_number": 1}]
    tied += [{"tx_hash": f"o{i}", "score": 0.5, "block_number": 1} for i in range(1, 4)]
    tied += [{"tx_hash": "x", "score": 0.5, "block_number": 1}]
    assert evaluate_transactions(tied, labels)["top3_in_block"] == 0.5


def test_evaluate_details_say_where_each_exploit_landed_and_which_ordinary_outrank_them(tmp_path: Path) -> None:
    from detectors.evaluate import EvaluationError, evaluate

    rows = [("x0", 0.9, 1), ("o0", 0.8, 1), ("o1", 0.8, 2), ("x1", 0.7, 2), ("o2", 0.1, 2), ("x2", 0.05, 1)]
    (tmp_path / "s.jsonl").write_bytes(b"".join(orjson.dumps({"tx_hash": h, "score": x, "block_number": b,
                                                              "detectors": {}, "wallets": {}}) + b"\n"
                                                for h, x, b in rows))
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps({"tx_hash": "x0", "status": "firing"}) + b"\n"
                                       + orjson.dumps({"tx_hash": "o0", "status": "firing"}) + b"\n")
    (tmp_path / "l.csv").write_text("tx_hash,label,incident\nx0,1,Alpha\nx1,1,Beta\nx2,1,\no0,0,\no1,0,\no2,0,\n")
    got = evaluate(tmp_path / "s.jsonl", tmp_path / "l.csv", tmp_path / "a.jsonl", details_top=2)["details"]
    assert got["positives"] == [
        {"tx_hash": "x0", "score": 0.9, "rank": 1, "block_number": 1, "rank_in_block": 1, "alerted": True,
         "incident": "Alpha"},
        {"tx_hash": "x1", "score": 0.7, "rank": 4, "block_number": 2, "rank_in_block": 2, "alerted": False,
         "incident": "Beta"},
        {"tx_hash": "x2", "score": 0.05, "rank": 6, "block_number": 1, "rank_in_block": 3, "alerted": False},
    ]
    # the two ordinary transactions tied at 0.8 share rank 2; the third is left out (top 2)
    assert [(r["tx_hash"], r["rank"], r["alerted"]) for r in got["top_ordinary"]] == [("o0", 2, True), ("o1", 2, False)]
    (tmp_path / "bad.csv").write_text("tx_hash,label\nx0,yes\n")
    with pytest.raises(EvaluationError, match=r"bad\.csv:2: label 'yes' is not 0 or 1"):
        evaluate(tmp_path / "s.jsonl", tmp_path / "bad.csv")


def test_wallet_burst_counts_half_when_payments_are_large() -> None:
    wb = WalletBehaviour()
    small, large, t = "0x" + "5" * 40, "0x" + "6" * 40, 1_600_000_000.0
    for who, value in ((small, 10**16), (large, 500 * 10**18)):  # 0.01 ETH vs 500 ETH, 6 in one hour
        for i in range(6):
            wb.learn_tx(Tx(hash=f"0x{i:064x}", sender=f"0x{i + 1:040x}", to=who, value=value), t + i * 600)
    burst = {who: next(c.contribution for c in wb.explain(who) if c.feature == "span_days") for who in (small, large)}
    assert burst[large] == pytest.approx(burst[small] / 2, rel=0.05)  # small payments: 1 - log1p(0.01)/log1p(100)
    assert wb.score(small) > wb.score(large)


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.floats(), st.floats(-3000, 3000), st.floats(-1e-5, 1e-5),
                 st.integers(-2 * 10**9, 2 * 10**9).map(lambda k: (k + 0.5) / 1e6),
                 st.integers(-2 * 10**9, 2 * 10**9).map(lambda k: math.nextafter((k + 0.5) / 1e6, math.inf)),
                 st.integers(-2 * 10**9, 2 * 10**9).map(lambda k: math.nextafter((k + 0.5) / 1e6, -math.inf))))
@example(0.0)
@example(-0.0)
@example(-1e-9)
@example(0.0000005)
@example(-0.0000005)
@example(2000.0000005)
@example(math.inf)
@example(-math.inf)
@example(math.nan)
@example(1e300)
@example(0.1234565)
@example(2.675)
def test_round6_is_round_to_6_digits_bit_for_bit(x: float) -> None:
    # every score written out goes through round6: a file must not depend on which rounding ran
    expected = round(x, 6)
    assert _bits(round6(x)) == _bits(expected) or (math.isnan(x) and math.isnan(round6(x)))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(0, 2**256 - 1), st.integers(0, 10**6).map(lambda k: k * 10**13),
                 st.integers(0, 2**60), st.integers(2**53 - 5, 2**53 + 5)))
@example(10**18 + 1)
@example(2**256 - 1)
@example(123456789012345678901)
def test_value_in_eth_is_wei_divided_by_10_18_bit_for_bit(wei: int) -> None:
    from detectors.features import tx_features

    got = tx_features(Tx(hash="0x01", sender="0xa", to="0xb", value=wei, input="0x"))["value_eth"]
    assert _bits(got) == _bits(wei / 10**18)


def test_a_deployer_initialising_its_own_contract_is_set_up_but_anyone_else_doing_it_is_a_takeover() -> None:
    from detectors.entities import EntityState, EntityView
    from detectors.features import tx_features
    from detectors.rules import load_rules
    from ingest import Receipt

    deployer, outsider, proxy = "0x" + "d" * 40, "0x" + "e" * 40, "0x" + "f" * 40
    state = EntityState()
    deploy = Tx(hash="0x" + "1" * 64, sender=deployer, to=None, input="0x6080",
                receipt=Receipt(tx_hash="0x" + "1" * 64, status=1, contract_address=proxy))
    state.learn(deploy, None, now=1000.0)
    init = "0xc4d66de8" + deployer[2:].rjust(64, "0")  # initialize(address)

    def call(sender: str) -> dict[str, float]:
        root = CallFrame(type="CALL", sender=sender, to=proxy, input=init,
                         calls=(CallFrame(type="DELEGATECALL", sender=proxy, to="0x" + "a" * 40, input=init),))
        tx = Tx(hash="0x" + "2" * 64, sender=sender, to=proxy, input=init, trace=root)
        assert tx_features(tx)["takeover_calls"] == 1.0  # the trace alone cannot tell
        return tx_features(tx, None, EntityView(state, WalletBehaviour()), 1060.0)

    own, theirs = call(deployer), call(outsider)
    rules = load_rules()
    assert own["to_created_by_sender"] == 1.0 and own["takeover_calls"] == 0.0
    assert "access-control-takeover" not in [r.name for r in rules.matches(own)]
    assert theirs["to_created_by_sender"] == 0.0 and theirs["takeover_calls"] == 1.0
    assert "access-control-takeover" in [r.name for r in rules.matches(theirs)]


def test_half_space_trees_score_as_rivers_one_at_a_time() -> None:
    """The per-block arrays give river's own scores: river built the trees, and learning in
    batches pivots the masses where river's one-by-one learning does."""
    from detectors.base import Batch
    from detectors.online import _COLUMN, HSTDetector, river_model, scale

    ours = HSTDetector(n_trees=5, height=4, window_size=40, seed=3)
    theirs = river_model(5, 4, 40, 3)
    rng = random.Random(11)
    seen = 0
    for _ in range(60):  # blocks of 1-9 traced transactions: windows pivot inside blocks
        rows = [{"frames": float(rng.randint(2, 90)), "depth": float(rng.randint(1, 9)),
                 "token_moves": float(rng.randint(0, 30)), "value_eth": rng.random() * 50}
                for _ in range(rng.randint(1, 9))]
        batch = Batch([None] * len(rows), rows)
        got = ours.score_many(batch)
        xs = [dict(zip(_COLUMN, scale(r), strict=True)) for r in rows]
        if seen >= 40:
            assert [s.raw for s in got if s is not None] == [theirs.score_one(x) for x in xs]
        else:
            assert all(s is None for s in got)  # cold in the first window (river scores 0 there)
        ours.learn_many(batch, range(len(rows)))
        for x in xs:
            theirs.learn_one(x)
        seen += len(rows)
    assert ours.warm and seen > 5 * 40

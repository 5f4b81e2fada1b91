"""The learned detectors alone, on the devnet: ``chainsentry demo`` with the rule evidence turned off
by configuration catches the exploits that drain a contract or a holder the stream has learned (the
bank's re-entrancy, the oracle manipulation, the phishing sweep, the mixer-funded re-entrancy), in
the mempool and in the block, with no false alert; and the run is written as a replayable, labelled
recording."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tests.rpcservers import free_port

CAUGHT = {"reentrancy", "oracle", "phishing", "mixer"}  # what the per-address baselines see


def test_the_learned_detectors_alone_catch_the_drains_with_no_false_alert(anvil_binary: str, tmp_path: Path) -> None:
    config = tmp_path / "learned-only.yaml"
    config.write_text("detectors:\n  shape: {enabled: false}\n")
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "chainsentry.cli", "demo", "--config", str(config), "--duration", "100", "--out",
         str(out), "--api", f"127.0.0.1:{free_port()}", "--block-time", "1", "--rate", "30", "--first-attack", "25",
         "--attack-every", "10", "--no-respond"], capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = orjson.loads((out / "summary.json").read_bytes())
    caught = {a["scenario"] for a in summary["attacks"] if a["caught"]}
    assert caught >= CAUGHT, (caught, run.stderr[-3000:])
    assert summary["false_alerts"] == 0 and summary["background_transactions"] > 1000, summary
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    exploits = {a["attack_tx"]: a["scenario"] for a in summary["attacks"]}
    scenario_txs = {h for line in (out / "attacks.jsonl").read_bytes().splitlines()
                    for h in orjson.loads(line)["tx_hashes"]}
    alerts = [a for a in alerts if a["detector"] == "fusion"]  # (not the demo's monitors or deployment warnings)
    for a in alerts:  # each is about an attack, and says which contract or holder left its own history
        assert a["tx_hash"] in scenario_txs
        assert a["tx_hash"] not in exploits or any(
            e["feature"] in ("outflow_vs_p99", "subtree_vs_p99") and "99th percentile" in e["why"]
            for e in a["explanation"]), a
    early = {exploits[a["tx_hash"]] for a in alerts if a["stage"] == "mempool" and a["tx_hash"] in exploits}
    assert early >= CAUGHT, "before inclusion too"
    # the chain it ran, labelled: every exploit that succeeded is a 1, the background a 0
    labels = (out / "labels.csv").read_text().splitlines()
    assert labels[0] == "tx_hash,label,incident,date"
    ones = {line.split(",")[0] for line in labels[1:] if line.split(",")[1] == "1"}
    assert ones == {a["attack_tx"] for a in summary["attacks"] if a["outcome"] == "succeeded"}
    assert len(labels) - 1 - len(ones) >= summary["background_transactions"] - 50
    blocks = (out / "blocks.jsonl").read_bytes().splitlines()
    assert len(blocks) >= 50 and all(orjson.loads(b)["transactions"] is not None for b in blocks[:3])

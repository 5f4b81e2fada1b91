"""`chainsentry demo` catches every attack it runs, and a real Prometheus (Debian's package)
scraping it, and a Kafka detector worker, answers every query of every dashboard panel; the
alerting rules pass promtool and load and evaluate in Prometheus."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from chainsentry.devnet.scenarios import ATTACKS
from tests.conftest import IN_CI, ROOT
from tests.rpcservers import free_port

DASHBOARDS = ROOT / "dashboards"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not found: install Debian's prometheus package (make install does)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _panels() -> list[tuple[str, str, str]]:
    out = []
    for f in sorted(DASHBOARDS.glob("*.json")):
        d = json.loads(f.read_text())
        for p in d["panels"]:
            for t in p["targets"]:
                out.append((d["uid"], p["title"], t["expr"]))
    return out


def test_dashboards_have_stable_uids_and_a_datasource_variable() -> None:
    uids = []
    for f in sorted(DASHBOARDS.glob("*.json")):
        d = json.loads(f.read_text())
        uids.append(d["uid"])
        assert [v["name"] for v in d["templating"]["list"]] == ["datasource"] and d["panels"]
        assert all(p["datasource"]["uid"] == "${datasource}" for p in d["panels"])
    assert sorted(uids) == ["chainsentry-delivery", "chainsentry-detectors", "chainsentry-kafka",
                            "chainsentry-overview"]


def test_alerting_rules_pass_promtool() -> None:
    promtool = _tool("promtool")
    res = subprocess.run([promtool, "check", "rules", "rules.yml"], cwd=DASHBOARDS, capture_output=True, text=True)
    assert res.returncode == 0 and "SUCCESS: 6 rules found" in res.stdout, res.stdout + res.stderr
    res = subprocess.run([promtool, "test", "rules", "rules_test.yml"], cwd=DASHBOARDS, capture_output=True,
                         text=True)
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


@pytest.mark.timeout(420)
def test_demo_catches_every_attack_and_every_dashboard_query_returns_data(
        anvil_binary: str, kafka: Any, data_dir: Path, tmp_path: Path) -> None:
    prometheus = _tool("prometheus")
    demo_api, detect_metrics, prom_port = free_port(), free_port(), free_port()
    # a Kafka detector worker with something to do, for the Kafka dashboard
    cfg = tmp_path / "k.yaml"
    cfg.write_text(yaml.safe_dump({"transport": {"partitions": 3, "kafka": {"batch_txs": 100}}}))
    prefix = f"d{uuid.uuid4().hex[:8]}"
    kafka_args = ["--config", str(cfg), "--kafka-bootstrap", kafka.bootstrap, "--topic-prefix", prefix]
    worker = subprocess.Popen([sys.executable, "-m", "chainsentry.cli", "worker", "--role", "detect", *kafka_args,
                               "--metrics", f"127.0.0.1:{detect_metrics}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    out = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "chainsentry.cli", "demo", "--duration", "100", "--out", str(out), "--api",
         f"127.0.0.1:{demo_api}", "--block-time", "1", "--rate", "25", "--first-attack", "20", "--attack-every", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DASHBOARDS / "rules.yml")],
        "scrape_configs": [
            {"job_name": "chainsentry", "static_configs": [{"targets": [f"127.0.0.1:{demo_api}"]}]},
            {"job_name": "chainsentry-detect", "static_configs": [{"targets": [f"127.0.0.1:{detect_metrics}"]}]},
        ]}))
    prom = subprocess.Popen([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))  # noqa: SIM115
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        replay = subprocess.run([sys.executable, "-m", "chainsentry.cli", "replay",
                                 str(data_dir / "attacks-dev.jsonl.gz"), "--transport", "kafka", *kafka_args,
                                 "--scores", str(tmp_path / "k.jsonl"), "--no-progress"],
                                capture_output=True, text=True, timeout=180)
        assert replay.returncode == 0, replay.stderr
        # query while the demo still runs (a stopped target's gauges go stale)
        deadline = time.monotonic() + 150
        attacks_file = out / "attacks.jsonl"
        while time.monotonic() < deadline:
            if attacks_file.exists() and attacks_file.read_bytes().count(b"\n") >= len(ATTACKS):
                break
            assert demo.poll() is None, demo.communicate()[1][-3000:]
            time.sleep(1)
        time.sleep(8)  # the last attack is mined and scored; a few more scrapes
        empty = []
        with httpx.Client(timeout=10) as http:
            for uid, title, expr in _panels():
                body = http.get(f"{base}/query", params={"query": expr}).json()
                assert body["status"] == "success", (uid, title, expr, body)
                if not body["data"]["result"]:
                    empty.append((uid, title, expr))
            groups = http.get(f"{base}/rules").json()["data"]["groups"]
        assert not empty, f"panel queries with no series: {empty}"
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 6 and all(r["health"] == "ok" for r in rules), rules
        assert all(not r["lastEvaluation"].startswith("0001") for r in rules), "every rule was evaluated"
        _, err = demo.communicate(timeout=180)
        assert demo.returncode == 0, err[-3000:]
    finally:
        for p in (demo, worker, prom):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (demo, worker, prom):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    attacks = [orjson.loads(x) for x in (out / "attacks.jsonl").read_bytes().splitlines()]
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    assert {a["scenario"] for a in attacks} == set(ATTACKS)
    by_tx: dict[str, set[str]] = {}
    for a in alerts:
        by_tx.setdefault(a["tx_hash"], set()).add(a["stage"])
    missed = [a["scenario"] for a in attacks
              if a["outcome"] == "succeeded" and "block" not in by_tx.get(a["attack_tx"], set())]
    assert not missed, f"attacks not alerted within their block: {missed}"
    # the guardian paused the bank before a pending drain was mined: that exploit reverted on chain
    prevented = [a for a in attacks if a["prevented"]]
    assert prevented and all(a["outcome"] == "reverted" and a["responses"][0]["outcome"] == "mined"
                             for a in prevented), attacks
    early = [a["scenario"] for a in attacks if "mempool" in by_tx.get(a["attack_tx"], set())]
    assert len(early) == len(attacks), f"alerted before inclusion: {early} of {[a['scenario'] for a in attacks]}"
    for a in alerts:
        if a["tx_hash"] in {x["attack_tx"] for x in attacks}:
            assert a["explanation"] and a["description"], "each alert names what was odd"
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["caught"] == summary["total"] and summary["total"] + summary["prevented"] >= 5
    assert summary["background_transactions"] > 500
    assert summary["false_per_1000"] is not None and summary["false_per_1000"] <= 2.0, summary
    assert summary["webhook"]["received"] > 0 and summary["webhook"]["bad_signatures"] == 0

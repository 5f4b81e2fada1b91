"""Monitors and responses against a real node: a pending drain of the devnet's bank is seen in its
simulated call tree, the guardian's pause is sent priced above it, and with mining off both wait
in the pool; the next block mines the pause first and the exploit reverts. As a dry run the pause
is only simulated and the exploit succeeds. The attack contract's deployment raised an early
warning first, and the exploit's alert links to it. The guardian key appears nowhere."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from alerts.model import Alert, alert_id
from chainsentry.config import ConfigError, Secrets, load_settings
from chainsentry.devnet.defense import demo_monitors, fund, new_guardian
from chainsentry.devnet.scenarios import E18, DefiDevnet
from chainsentry.guardian import load_guardian
from chainsentry.service import build_service
from detectors.engine import ScoringEngine
from ingest import RpcClient
from tests.conftest import wait_until


async def _attack_with_defence(anvil: Any, tmp_path: Path, respond: bool, caplog: pytest.LogCaptureFixture
                               ) -> dict[str, Any]:
    rpc = RpcClient([anvil.http_url])
    dev = DefiDevnet(rpc, wallets=12)
    key, guardian = new_guardian()
    await fund(rpc, guardian)
    w = await dev.setup(mine=True, guardian=guardian)
    settings = load_settings(None, environ={}, overrides={
        "rpc": [anvil.http_url], "ws": anvil.ws_url, "api": "127.0.0.1:0", "data_dir": tmp_path,
        "ingest": {"poll_interval": 0.2, "trace_pending": True},
        "monitors": [*demo_monitors(w, respond),  # and the USD pulled by the router, found deep in the call tree
                     {"name": "usd-pulls", "addresses": [w.usd], "abis": ["erc20"], "functions": [
                         {"function": "transferFrom", "where": f"call.from == {w.router} and value > 100 ether"}]}]})
    alerts: list[Alert] = []
    engine = ScoringEngine(settings.detectors.engine_config(live=True))
    service = build_service(settings, Secrets(api_token=SecretStr("t0ken"), guardian_key=SecretStr(key)), engine,
                            on_alert=alerts.append)
    caplog.set_level(logging.DEBUG)
    running = asyncio.create_task(service.run())
    try:
        head = int(await rpc.call("eth_blockNumber"), 16)
        await wait_until(lambda: (service.pipeline.stats.last_block or 0) >= head, timeout=30)
        # the attack contract, deployed and mined: an early warning
        eoa = dev.attackers[0]
        [dep] = await dev._send_all([dev._tx(eoa, None, dev.abi.deploy("ReentrancyAttacker", w.bank), gas=3_000_000)])
        await rpc.call("evm_mine")
        thief = (await dev._mined([dep]))[0]["contractAddress"]
        await wait_until(lambda: any(a.detector == "deployment" and a.stage == "block" for a in alerts), timeout=20)
        # the exploit, pending: the monitor sees the bank's ETH leave in the simulated call tree
        [exploit] = await dev._send_all([dev._tx(eoa, thief, dev.abi.call("ReentrancyAttacker", "attack", 12),
                                                 value=E18, gas=3_000_000)])
        store = service.delivery.store

        def responded() -> bool:
            drains = [a for a in alerts if a.detector == "monitor/bank-drain"]
            return bool(drains) and any(r.outcome in ("sent", "simulated", "failed")
                                        for r in store.responses(drains[0].id))

        await wait_until(responded, timeout=30)
        await rpc.call("evm_mine")
        receipts = await dev._mined([exploit])
        await asyncio.sleep(1.0)  # the block is scored, the response sees its receipt
        pull = await dev.attack("arbitrary-call")  # the router pulls a user's USD with the user's approval
        await wait_until(lambda: any(a.monitor == "usd-pulls" for a in alerts), timeout=20)
        await rpc.call("evm_mine")
        await wait_until(lambda: any(a.monitor == "usd-pulls" and a.stage == "block" for a in alerts), timeout=20)
        drain = next(a.id for a in alerts if a.detector == "monitor/bank-drain")
        api = f"http://127.0.0.1:{service.pipeline.api_port}"
        async with httpx.AsyncClient() as http:
            pages = [(await http.get(api + path)).text for path in
                     ("/alerts?limit=500", f"/alerts/{drain}", "/monitors", "/metrics", "/status")]
        return {"key": key, "guardian": guardian, "exploit": exploit, "exploit_receipt": receipts[0], "thief": thief,
                "dep": dep, "alerts": alerts, "pull": pull, "router": w.router, "drain": store.get(drain),
                "pages": pages, "rpc": rpc,
                "deployment_id": alert_id(service.scorer.chain_id, dep, "deployment", dep)}
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_the_guardian_pauses_the_bank_before_a_pending_drain_is_mined(anvil: Any, tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    got = await _attack_with_defence(anvil, tmp_path, True, caplog)
    rpc = got["rpc"]
    try:
        drain = got["drain"]
        assert drain.stage in ("mempool", "block") and drain.monitor == "bank-drain" and drain.severity == "critical"
        assert drain.matches[0].kind == "outflow" and int(drain.matches[0].args["amount"]) > 5 * E18
        [pause] = [r for r in drain.responses if r.responder == "bank-drain.pause"]
        assert pause.outcome == "mined" and pause.tx_hash, drain.responses
        mined = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in (pause.tx_hash, got["exploit"])])
        assert mined[0]["blockNumber"] == mined[1]["blockNumber"], "both waited in the pool for the same block"
        assert int(mined[0]["transactionIndex"], 16) < int(mined[1]["transactionIndex"], 16), "the pause went first"
        assert mined[0]["status"] == "0x1" and mined[1]["status"] == "0x0", "the exploit reverted"
        sent = await rpc.call("eth_getTransactionByHash", [pause.tx_hash])
        attack = await rpc.call("eth_getTransactionByHash", [got["exploit"]])
        assert sent["from"].lower() == got["guardian"]
        assert int(sent["maxPriorityFeePerGas"], 16) > int(attack["maxPriorityFeePerGas"], 16)
        # the early warning came first, named the new contract, and the exploit's alert links to it
        warnings = [a for a in got["alerts"] if a.detector == "deployment"]  # (pending, then mined: one id)
        assert {a.id for a in warnings} == {got["deployment_id"]}
        warning = warnings[-1]
        assert warning.tx_hash == got["dep"] and warning.addresses[-1] == got["thief"]
        assert warning.type == "suspicious" and "no events" in warning.description
        assert got["deployment_id"] == warning.id and warning.id in drain.related
        # a call two frames deep (user -> router -> token), decoded, in the mempool and in the block
        pulls = [a for a in got["alerts"] if a.monitor == "usd-pulls"]
        assert {a.stage for a in pulls} == {"mempool", "block"}
        assert {a.tx_hash for a in pulls} == {got["pull"].attack_tx}
        args = pulls[-1].matches[0].args
        assert args["caller"] == got["router"] and args["to"] == got["pull"].attacker and int(args["value"]) > 0
        # the Paused event, decoded, from the bank-paused monitor
        paused = [a for a in got["alerts"] if a.monitor == "bank-paused"]
        assert paused and paused[0].matches[0].args == {"account": got["guardian"]}
        # the guardian key: in no log line, API answer or stored file
        secret = got["key"].lower().removeprefix("0x")
        assert secret not in caplog.text.lower()
        for page in got["pages"]:
            assert secret not in page.lower()
        assert "bank-drain" in got["pages"][2] and "chainsentry_responses_total" in got["pages"][3]
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes().lower(), path
    finally:
        await rpc.aclose()


async def test_a_dry_run_only_simulates_the_pause_and_the_exploit_succeeds(anvil: Any, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    got = await _attack_with_defence(anvil, tmp_path, False, caplog)
    try:
        [pause] = [r for r in got["drain"].responses if r.responder == "bank-drain.pause"]
        assert pause.outcome == "simulated" and pause.tx_hash is None and "would succeed" in pause.detail
        assert got["exploit_receipt"]["status"] == "0x1", "nothing stopped it"
        block_alerts = [a for a in got["alerts"] if a.tx_hash == got["exploit"] and a.stage == "block"]
        assert block_alerts and all(got["deployment_id"] in a.related for a in block_alerts)
    finally:
        await got["rpc"].aclose()


def test_a_bad_guardian_key_or_keystore_password_is_one_clear_error_without_the_key(tmp_path: Path) -> None:
    from eth_account import Account

    settings = load_settings(None, environ={})
    bad = "0x" + "zz" * 32
    with pytest.raises(ConfigError) as err:
        load_guardian(settings, Secrets(guardian_key=SecretStr(bad)))
    assert "CHAINSENTRY_GUARDIAN_KEY" in str(err.value) and "zz" not in str(err.value)
    key, address = new_guardian()
    keystore = tmp_path / "guardian.json"
    keystore.write_text(__import__("json").dumps(Account.encrypt(key, "right", kdf="pbkdf2", iterations=1000)))
    with_file = load_settings(None, environ={}, overrides={"guardian": {"keystore": keystore}})
    with pytest.raises(ConfigError, match="wrong password") as err:
        load_guardian(with_file, Secrets(guardian_password=SecretStr("wrong")))
    assert key[2:] not in str(err.value)
    guardian = load_guardian(with_file, Secrets(guardian_password=SecretStr("right")))
    assert guardian is not None and guardian.address == address
    assert key[2:] not in repr(guardian) and key[2:] not in str(guardian)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(guardian)

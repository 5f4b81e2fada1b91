"""Responses: once per alert and response, rate-limited, every outcome on the alert; a script run
for real; the guardian transaction's fees above the trigger's; the Safe proposal's hash as the
Safe computes it (checked against eth-account's own EIP-712 encoder)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson
from eth_account.messages import _hash_eip191_message, encode_typed_data

from alerts.model import Alert
from alerts.responders import GWEI, ChainError, SafeResponder, ScriptResponder, TransactionResponder, safe_tx_hash
from alerts.responses import ResponseRunner, SafeSpec, ScriptSpec, TransactionSpec
from alerts.store import AlertStore
from tests.test_alerts import alert

SAFE = "0x" + "5a" * 20
BANK = "0x" + "ba" * 20


class Chain:
    """A ChainWriter for pure-logic tests: it records what would be sent (the anvil tests send for real)."""

    address = "0x" + "9a" * 20
    chain_id = 31337

    def __init__(self, pending: tuple[int, int] | None = (50 * GWEI, 3 * GWEI), revert: bool = False,
                 refuse: str | None = None) -> None:
        self.pending, self.revert, self.refuse = pending, revert, refuse
        self.sent: list[dict[str, object]] = []

    async def pending_fees(self, tx_hash: str) -> tuple[int, int] | None:
        return self.pending

    async def base_fee(self) -> int:
        return 10 * GWEI

    async def simulate(self, to: str, data: str) -> int:
        if self.revert:
            raise ChainError("execution reverted: guardian", "revert")
        return 30_000

    async def send(self, to: str, data: str, gas: int, max_fee: int, priority_fee: int,
                   fresh_nonce: bool = False) -> str:
        if self.refuse and not fresh_nonce:
            raise ChainError("nonce too low", self.refuse)
        self.sent.append({"to": to, "data": data, "max_fee": max_fee, "priority": priority_fee, "fresh": fresh_nonce})
        return "0x" + "ee" * 32

    async def receipt_status(self, tx_hash: str, timeout: float) -> bool | None:
        return True

    async def call(self, to: str, data: str) -> str:
        return "0x" + "00" * 31 + "07"


def pending_alert(i: int = 1) -> Alert:
    return alert(i).replace(stage="mempool", block_number=None, block_hash=None)


async def _steps(responder: object, a: Alert) -> list[str]:
    return [s.outcome async for s in responder.respond(a)]  # type: ignore[attr-defined]


async def test_the_pause_is_priced_above_the_pending_trigger_and_retried_once_on_a_taken_nonce() -> None:
    chain = Chain(refuse="nonce")
    r = TransactionResponder(TransactionSpec(kind="transaction", contract=BANK, function="pause()"), "m", chain)
    assert await _steps(r, pending_alert()) == ["sent", "mined"]
    [sent] = chain.sent
    assert sent["data"] == "0x8456cb59" and sent["fresh"] is True
    assert sent["priority"] == 3 * GWEI * 150 // 100 + 1 and sent["max_fee"] > 50 * GWEI
    capped = TransactionResponder(TransactionSpec(kind="transaction", contract=BANK, function="pause()",
                                                  max_fee_gwei=20), "m", Chain())
    max_fee, priority, why = await capped.fees(pending_alert())
    assert max_fee == 20 * GWEI and priority <= max_fee and "capped" in why


async def test_a_reverting_simulation_sends_nothing_and_a_dry_run_only_simulates() -> None:
    chain = Chain(revert=True)
    r = TransactionResponder(TransactionSpec(kind="transaction", contract=BANK, function="pause()"), "m", chain)
    assert await _steps(r, pending_alert()) == ["failed"] and chain.sent == []
    dry = TransactionResponder(TransactionSpec(kind="transaction", contract=BANK, function="pause()", dry_run=True),
                               "m", chain := Chain())
    assert await _steps(dry, pending_alert()) == ["simulated"] and chain.sent == []


async def test_a_script_gets_the_alert_on_stdin_within_its_time_limit(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    ok = ScriptResponder(ScriptSpec(kind="script", command=[
        sys.executable, "-c", f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"]), "m")
    assert await _steps(ok, pending_alert()) == ["ran"]
    assert orjson.loads(out.read_bytes())["id"] == pending_alert().id
    failing = ScriptResponder(ScriptSpec(kind="script", command=[sys.executable, "-c", "import sys; sys.exit(3)"]), "m")
    [step] = [s async for s in failing.respond(pending_alert())]
    assert step.outcome == "failed" and "exit status 3" in step.detail
    slow = ScriptResponder(ScriptSpec(kind="script", timeout=0.5,
                                      command=[sys.executable, "-c", "import time; time.sleep(30)"]), "m")
    [step] = [s async for s in slow.respond(pending_alert())]
    assert step.outcome == "failed" and "time limit" in step.detail
    missing = ScriptResponder(ScriptSpec(kind="script", command=["/no/such/script"]), "m")
    assert await _steps(missing, pending_alert()) == ["failed"]


async def test_a_response_runs_once_per_alert_and_within_its_rate_limit(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "alerts.db")
    chain = Chain()
    pause = TransactionResponder(TransactionSpec(kind="transaction", contract=BANK, function="pause()",
                                                 max_per_hour=2), "m", chain)
    seen: list[str] = []
    runner = ResponseRunner(store, lambda a: [pause], lambda step, since: seen.append(step.outcome))
    for a in (pending_alert(1), pending_alert(1), pending_alert(1).replace(stage="block"), pending_alert(2),
              pending_alert(3)):
        store.upsert(a)
        runner.handle(a)
    await runner.drain()
    assert len(chain.sent) == 2, "alert 1 once (mempool and block), alert 2; alert 3 over the limit"
    assert [r.outcome for r in store.get(pending_alert(1).id).responses] == ["mined"]  # type: ignore[union-attr]
    assert [r.outcome for r in store.responses(pending_alert(3).id)] == ["skipped"]
    assert seen.count("sent") == 2 and seen.count("skipped") == 1
    runner2 = ResponseRunner(store, lambda a: [pause])  # after a restart: still once
    runner2.handle(pending_alert(1))
    await asyncio.sleep(0)
    assert len(chain.sent) == 2


async def test_a_safe_proposal_carries_the_hash_the_owners_sign(tmp_path: Path) -> None:
    r = SafeResponder(SafeSpec(kind="safe", safe=SAFE, contract=BANK, function="pause()"), "m", Chain(), tmp_path)
    [step] = [s async for s in r.respond(pending_alert())]
    assert step.outcome == "proposed"
    [written] = list((tmp_path / "safe-proposals").glob("*.json"))
    proposal = orjson.loads(written.read_bytes())
    assert proposal["nonce"] == 7 and proposal["data"] == "0x8456cb59" and proposal["to"] == BANK
    typed = encode_typed_data(full_message={
        "types": {"EIP712Domain": [{"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "SafeTx": [{"name": n, "type": t} for n, t in (
                      ("to", "address"), ("value", "uint256"), ("data", "bytes"), ("operation", "uint8"),
                      ("safeTxGas", "uint256"), ("baseGas", "uint256"), ("gasPrice", "uint256"),
                      ("gasToken", "address"), ("refundReceiver", "address"), ("nonce", "uint256"))]},
        "primaryType": "SafeTx", "domain": {"chainId": 31337, "verifyingContract": SAFE},
        "message": {"to": BANK, "value": 0, "data": bytes.fromhex("8456cb59"), "operation": 0, "safeTxGas": 0,
                    "baseGas": 0, "gasPrice": 0, "gasToken": "0x" + "00" * 20, "refundReceiver": "0x" + "00" * 20,
                    "nonce": 7}})
    assert proposal["safeTxHash"] == "0x" + _hash_eip191_message(typed).hex()
    assert proposal["safeTxHash"] == safe_tx_hash(31337, SAFE, BANK, "0x8456cb59", 7)

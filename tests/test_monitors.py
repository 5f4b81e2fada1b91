"""Monitors matched on transactions (pure logic: the events are built here as the mappers make
them; the same monitors run against a real node in tests/test_monitor_live.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_hash.auto import keccak

from detectors.monitors import Monitor, MonitorError, MonitorSet, MonitorSpec
from ingest.events import CallFrame, Log, Receipt, Tx

VAULT = "0x" + "0a" * 20
PROXY = "0x" + "0b" * 20
IMPL = "0x" + "0c" * 20
ROUTER = "0x" + "0d" * 20
USER = "0x" + "01" * 20
THIEF = "0x" + "02" * 20
TOKEN = "0x" + "70" * 20


def call(sig: str, *args: Any) -> str:
    _, _, rest = sig.partition("(")
    types = [t for t in rest.rstrip(")").split(",") if t]
    return "0x" + (keccak(sig.encode())[:4] + encode(types, list(args))).hex()


def topic(sig: str) -> str:
    return "0x" + keccak(sig.encode()).hex()


def word(address: str) -> str:
    return "0x" + "0" * 24 + address[2:]


def tx(trace: CallFrame | None, *, receipt: Receipt | None = None, number: int = 10, h: str = "0x01") -> Tx:
    return Tx(hash=h, sender=USER, to=trace.to if trace else VAULT, input=trace.input if trace else "0x",
              block_number=number, receipt=receipt, trace=trace, value=0, nonce=1)


def monitor(**kw: Any) -> Monitor:
    return Monitor(MonitorSpec(**{"name": "m", "addresses": [VAULT], **kw}))


def test_a_call_through_a_router_and_a_proxy_is_found_in_the_call_tree_with_its_arguments() -> None:
    upgrade = call("upgradeTo(address)", THIEF)
    trace = CallFrame("CALL", USER, ROUTER, 0, call("multicall(bytes[])", [bytes.fromhex(upgrade[2:])]), calls=(
        CallFrame("CALL", ROUTER, PROXY, 0, upgrade, calls=(CallFrame("DELEGATECALL", PROXY, IMPL, 0, upgrade),)),))
    m = Monitor(MonitorSpec(name="upgrades", addresses=[PROXY], abis=["proxy"],
                            functions=[{"function": "upgradeTo", "where": "newImplementation != call.from"}]))
    [found] = m.match(tx(trace), "mempool", 0.1, [])
    assert (found.kind, found.name, found.address) == ("call", "upgradeTo(address)", PROXY)
    assert found.args == {"newImplementation": THIEF, "caller": ROUTER}
    # the top-level call alone (no trace) does not show it
    assert m.match(tx(None), "block", 0.1, []) == []


def test_events_are_decoded_at_block_stage() -> None:
    owner_changed = Log(VAULT, (topic("OwnershipTransferred(address,address)"), word(USER), word(THIEF)), "0x")
    t = tx(CallFrame("CALL", USER, VAULT, 0, "0x"), receipt=Receipt("0x01", status=1, logs=(owner_changed,)))
    m = monitor(abis=["ownable"], events=[{"event": "OwnershipTransferred", "where": "newOwner != previousOwner"}])
    [found] = m.match(t, "block", None, [])
    assert found.args == {"previousOwner": USER, "newOwner": THIEF}
    assert m.match(t, "mempool", None, []) == []  # no logs before a transaction is mined


def test_net_outflow_per_transaction_and_summed_over_a_window_of_blocks() -> None:
    m = monitor(outflows=[{"asset": "ETH", "where": "window > 10 ether", "window_blocks": 3}])

    def drain(eth: int, number: int) -> Tx:
        return tx(CallFrame("CALL", USER, VAULT, 0, call("withdraw(uint256)", eth),
                            calls=(CallFrame("CALL", VAULT, USER, eth * 10**18, "0x"),)), number=number)

    assert m.match(drain(4, 10), "block", None, []) == []
    assert m.match(drain(4, 11), "block", None, []) == []
    [found] = m.match(drain(4, 12), "block", None, [])  # 12 ETH in blocks 10-12
    assert found.args["amount"] == str(4 * 10**18) and found.args["window"] == str(12 * 10**18)
    assert m.match(drain(1, 14), "block", None, []) == []  # blocks 12-14: 4 + 1 ETH
    # a pending transaction is counted with what the window holds (block 14's 1 ETH), without being remembered
    assert m.match(drain(10, 15), "mempool", None, [])
    assert not m.match(drain(1, 15), "block", None, [])


def test_token_outflow_by_symbol_with_its_decimals() -> None:
    m = monitor(tokens={"USDC": {"address": TOKEN, "decimals": 6}},
                outflows=[{"asset": "USDC", "where": "amount >= 1e6 USDC"}])
    move = CallFrame("CALL", VAULT, TOKEN, 0, call("transfer(address,uint256)", THIEF, 10**12))
    assert m.match(tx(CallFrame("CALL", USER, VAULT, 0, "0x12345678", calls=(move,))), "mempool", None, [])
    small = CallFrame("CALL", VAULT, TOKEN, 0, call("transfer(address,uint256)", THIEF, 10**12 - 1))
    assert not m.match(tx(CallFrame("CALL", USER, VAULT, 0, "0x12345678", calls=(small,))), "mempool", None, [])


def test_failed_transactions_and_anomaly_matches() -> None:
    failed = tx(CallFrame("CALL", USER, VAULT, 0, "0x", error="execution reverted"))
    ok = tx(CallFrame("CALL", USER, VAULT, 0, "0x"))
    m = monitor(status="failed")
    assert [x.kind for x in m.match(failed, "mempool", None, [])] == ["status"]
    assert m.match(ok, "mempool", None, []) == []
    a = monitor(anomaly={"min_score": 0.8, "rules": ["reentrancy-drain"]})
    assert a.match(ok, "block", 0.9, [])[0].kind == "anomaly"
    assert a.match(ok, "block", 0.1, ["reentrancy-drain"])[0].args["rules"] == ["reentrancy-drain"]
    assert a.match(ok, "block", 0.1, ["other"]) == []


def test_a_monitor_finding_carries_its_name_matches_and_title() -> None:
    trace = CallFrame("CALL", USER, VAULT, 0, call("pause()"))
    ms = MonitorSet([Monitor(MonitorSpec(name="admin", addresses=[VAULT], abis=["pausable"],
                                         functions=[{"function": "pause"}], severity="medium",
                                         title="{monitor} saw {match} on {address}"))])
    [f] = ms.findings([tx(trace)], "block", [(0.2, [])], block_hash="0xbb")
    assert f.detector == "monitor/admin" and f.severity == "medium" and f.addresses[-1] == VAULT
    assert f.title == f"admin saw call pause() on {VAULT}"
    assert f.matches[0].name == "pause()" and f.block_hash == "0xbb"


def test_a_condition_that_fails_at_run_time_is_counted_and_skipped() -> None:
    errors: list[str] = []
    ms = MonitorSet([monitor(name="ratio", outflows=[{"where": "amount / (window - amount) > 1"}]),
                     monitor(name="any", outflows=[{"where": "amount > 0"}])], on_error=errors.append)
    t = tx(CallFrame("CALL", USER, VAULT, 0, "0x", calls=(CallFrame("CALL", VAULT, USER, 0, "0x"),)))
    paid = tx(CallFrame("CALL", USER, VAULT, 0, "0x", calls=(CallFrame("CALL", VAULT, USER, 5, "0x"),)), h="0x02")
    found = ms.findings([t, paid], "mempool", [(None, []), (None, [])])
    assert [f.detector for f in found] == ["monitor/any"]
    assert errors == ["ratio"]  # 5 / (5 - 5): counted, skipped, and the other monitor still ran
    assert ms.findings([tx(CallFrame("CALL", USER, VAULT, 0, "0x", calls=(
        CallFrame("CALL", USER, VAULT, 5, "0x"),)))], "mempool", [(None, [])]) == []


@pytest.mark.parametrize(("spec", "words"), [
    ({"abis": ["erc20"], "functions": [{"function": "tranfser"}]}, "functions[0]: no function 'tranfser'"),
    ({"abis": ["erc721"], "functions": [{"function": "safeTransferFrom"}]}, "is overloaded"),
    ({"abis": ["ownable"], "events": [{"event": "OwnershipTransferred", "where": "newOwnr == 1"}]},
     "events[0].where: unknown name 'newOwnr'"),
    ({"outflows": [{"where": "amount > 5 ether and"}]}, "outflows[0].where: column 21"),
    ({"outflows": [{"asset": "DAI"}]}, "'DAI' is not ETH, a token address, or a symbol"),
    ({"abis": ["no-such.json"]}, "no such file"),
])
def test_load_errors_name_the_monitor_and_the_place(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(MonitorError) as err:
        monitor(name="vault-watch", **spec)
    assert str(err.value).startswith("monitor 'vault-watch'") and words in str(err.value)


def test_an_abi_file_is_read_and_a_malformed_one_refused(tmp_path: Path) -> None:
    good = tmp_path / "vault.json"
    good.write_text(json.dumps({"abi": [{"type": "function", "name": "sweep", "inputs": [
        {"name": "to", "type": "address"}, {"name": "amounts", "type": "uint256[]"}]}]}))
    m = monitor(abis=[str(good)], functions=[{"function": "sweep", "where": "amounts[0] > 1"}])
    [found] = m.match(tx(CallFrame("CALL", USER, VAULT, 0, call("sweep(address,uint256[])", THIEF, [2, 3]))),
                      "mempool", None, [])
    assert found.args["amounts"] == [2, 3]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MonitorError, match="not readable JSON"):
        monitor(abis=[str(bad)])
    bad.write_text(json.dumps([{"type": "function", "inputs": []}]))
    with pytest.raises(MonitorError, match="without a name"):
        monitor(abis=[str(bad)])


def test_a_spike_of_failed_transactions_within_a_window_of_blocks() -> None:
    m = monitor(failures={"min_count": 3, "window_blocks": 5})

    def failing(number: int, h: str) -> Tx:
        return tx(CallFrame("CALL", USER, VAULT, 0, "0x", error="execution reverted"),
                  receipt=Receipt(h, status=0), number=number, h=h)

    assert m.match(failing(10, "0x1"), "block", None, []) == []
    assert m.match(failing(16, "0x2"), "block", None, []) == []  # block 10 is out of the window
    assert m.match(failing(17, "0x3"), "block", None, []) == []
    [spike] = m.match(failing(18, "0x4"), "block", None, [])
    assert spike.kind == "failures" and spike.args == {"count": 3, "blocks": 5}
    assert m.match(tx(CallFrame("CALL", USER, VAULT, 0, "0x"), receipt=Receipt("0x5", status=1), number=18),
                   "block", None, []) == [], "a transaction that succeeded is not part of it"

"""The devnet's Solidity contracts: the committed artifacts are what solc (from npm, pinned) makes
of the sources in the repository, and every attack scenario is a real, successful exploit."""

from __future__ import annotations

from typing import Any

from chainsentry.devnet.scenarios import ATTACKS, DefiDevnet
from chainsentry.devnet.solc import compile_sources, load_artifacts
from ingest import RpcClient


def test_committed_artifacts_match_a_fresh_compile() -> None:
    fresh = compile_sources()
    committed = load_artifacts()
    assert sorted(fresh) == sorted(committed)
    for name in fresh:
        assert fresh[name]["bytecode"] == committed[name]["bytecode"], f"{name}: run `make contracts`"
        assert fresh[name]["abi"] == committed[name]["abi"]


async def test_every_attack_succeeds_and_moves_value(anvil_factory: Any) -> None:
    node = anvil_factory(block_time=0.5, accounts=20)  # interval mining, as in the demo
    rpc = RpcClient([node.http_url])
    try:
        dev = DefiDevnet(rpc, wallets=20)
        w = await dev.setup(mine=False)
        await dev.send(30)
        bank_before = int(await rpc.call("eth_getBalance", [w.bank, "latest"]), 16)
        treasury_before = int(await rpc.call("eth_getBalance", [w.treasury, "latest"]), 16)
        def usd(holder: str) -> Any:
            return rpc.call("eth_call", [{"to": w.usd, "data": dev.abi.call("Token", "balanceOf", holder)}, "latest"])

        for scenario in ATTACKS:
            before = int(await usd(dev.attackers[1]), 16)
            attack = await dev.attack(scenario)
            receipts = await dev._mined(attack.tx_hashes)
            assert all(r["status"] == "0x1" for r in receipts), scenario
            if scenario == "arbitrary-call":  # a user's USD, taken through the router, is the attacker's
                assert int(await usd(dev.attackers[1]), 16) > before + 1_000 * 10**18
        victims_left = [int(await rpc.call("eth_call", [{"to": w.usd, "data": dev.abi.call("Token", "balanceOf", v)},
                                                        "latest"]), 16) for v in w.victims]
        assert victims_left == [0] * len(w.victims), "the approval phishing swept every victim"
        assert int(await rpc.call("eth_getBalance", [w.treasury, "latest"]), 16) == 0 < treasury_before
        assert int(await rpc.call("eth_getBalance", [w.bank, "latest"]), 16) < bank_before - 10 * 10**18
    finally:
        await rpc.aclose()

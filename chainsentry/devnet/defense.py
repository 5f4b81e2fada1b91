"""The devnet team's defence, for the demo: a guardian key allowed to pause the bank, and the
monitors a security engineer would write for it.

- ``bank-drain``: more than 5 ETH leaving the bank in one transaction (read from the call tree,
  so a pending transaction's simulated trace shows it before it is mined); its response pauses the
  bank from the guardian key, priced above the pending transaction, so the pause is mined first and
  the exploit reverts. ``respond=False`` makes that response a dry run (simulated, not sent).
- ``bank-paused``: the bank's ``Paused`` event, decoded (who paused it), for the record.
- ``treasury-owner``: ownership of the treasury changed (``OwnershipTransferred``).
"""

from __future__ import annotations

import secrets
from typing import Any

from eth_account import Account

from ingest import RpcClient

from .scenarios import World

GUARDIAN_FUNDS = 10 * 10**18


def new_guardian() -> tuple[str, str]:
    """(private key, address) of a fresh guardian key: made for this run, never written anywhere."""
    key = "0x" + secrets.token_hex(32)
    return key, Account.from_key(key).address.lower()


async def fund(rpc: RpcClient, address: str) -> None:
    await rpc.call("anvil_setBalance", [address, hex(GUARDIAN_FUNDS)])


def demo_monitors(world: World, respond: bool) -> list[dict[str, Any]]:
    """The monitors (config-file form) guarding the devnet's bank and treasury."""
    return [
        {"name": "bank-drain", "addresses": [world.bank], "abis": ["pausable"],
         "outflows": [{"asset": "ETH", "where": "amount > 5 ether"}],
         "severity": "critical", "type": "exploit", "title": "{monitor}: ETH drained from the bank ({stage})",
         "responses": [{"kind": "transaction", "name": "pause", "contract": world.bank, "function": "pause()",
                        "dry_run": not respond, "wait_receipt": 30, "max_per_hour": 1000}]},
        {"name": "bank-paused", "addresses": [world.bank], "abis": ["pausable"],
         "events": [{"event": "Paused"}], "severity": "info", "type": "info",
         "title": "{monitor}: the bank was paused"},
        {"name": "treasury-owner", "addresses": [world.treasury], "abis": ["ownable"],
         "events": [{"event": "OwnershipTransferred", "where": "newOwner != previousOwner"}],
         "severity": "high", "type": "suspicious", "title": "{monitor}: the treasury has a new owner"},
    ]


async def order_in_chain(rpc: RpcClient, first: str, then: str) -> bool | None:
    """Whether transaction ``first`` was mined before ``then`` (None: one is not mined)."""
    receipts = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in (first, then)])
    if not all(isinstance(r, dict) and r.get("blockNumber") for r in receipts):
        return None
    a, b = ((int(r["blockNumber"], 16), int(r["transactionIndex"], 16)) for r in receipts)
    return a < b

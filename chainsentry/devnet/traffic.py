"""Background traffic for a devnet: many wallets, transfers, deployments and contract calls.

The contracts are tiny hand-assembled EVM programs, so no compiler is needed (the attack
scenarios of the demo issue bring Solidity):

* ``COUNTER``: every call increments storage slot 0;
* ``RELAY``: forwards its call value to the address in calldata word 0 (after a 4-byte selector),
  so a call through it makes a two-level call tree (and a relay that targets another relay, three).

Transactions are sent with ``eth_sendTransaction`` from the node's unlocked dev accounts (start
anvil with ``--accounts N`` for N wallets), in JSON-RPC batches.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from ingest import RpcClient

log = logging.getLogger(__name__)

# runtime: PUSH1 0 SLOAD PUSH1 1 ADD PUSH1 0 SSTORE STOP
COUNTER_RUNTIME = "60005460010160005500"
# runtime: CALL(gas, calldataload(4), callvalue, 0, 0, 0, 0); POP; STOP
RELAY_RUNTIME = "6000600060006000346004355af15000"
RELAY_SELECTOR = "0x6c5e6e6f"  # any 4 bytes: the relay reads only the word after them
# runtime: for each packed command [20-byte target][2-byte length][data] in calldata, CALL target
# with data (no value); lets a test compose any call tree (nested executors re-enter each other)
EXECUTOR_RUNTIME = (
    "60005b36811015603557803560601c8160140135"
    "60f01c808360160160003760006000826000600086"
    "5af1509050016016016002565b00"
)


def init_code(runtime_hex: str) -> str:
    """Creation code that returns ``runtime_hex`` as the contract's code.

    >>> init_code("00")
    '0x6001600c60003960016000f300'
    """
    n = len(runtime_hex) // 2
    if n > 255:
        raise ValueError("runtime too long for this 12-byte loader")
    return f"0x60{n:02x}600c60003960{n:02x}6000f3{runtime_hex}"


def command(target: str, data: str = "0x") -> str:
    """One executor command (hex, no 0x): call ``target`` with ``data``."""
    body = data[2:] if data.startswith("0x") else data
    return target[2:].lower() + f"{len(body) // 2:04x}" + body


def executor_calldata(*commands: str) -> str:
    """Calldata for the executor contract from :func:`command` strings.

    >>> executor_calldata(command("0x" + "11" * 20, "0xab"))
    '0x11111111111111111111111111111111111111110001ab'
    """
    return "0x" + "".join(commands)


def relay_calldata(target: str) -> str:
    return RELAY_SELECTOR + target[2:].lower().rjust(64, "0")


async def wait_receipts(rpc: RpcClient, hashes: list[str], timeout: float = 30.0, *,
                        mine: bool = False) -> list[dict[str, Any]]:
    """The receipts of ``hashes`` once all are mined (polling), or TimeoutError. With ``mine``
    (a node that mines only when told), a block is mined again each second while some are
    missing: a transaction that reached the pool just after the last ``evm_mine`` is not left behind."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    polls = 0
    while True:
        receipts = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        if all(isinstance(r, dict) for r in receipts):
            return receipts
        if loop.time() > deadline:
            raise TimeoutError(f"{sum(not isinstance(r, dict) for r in receipts)} devnet transactions were not "
                               f"mined within {timeout:g} s")
        polls += 1
        if mine and polls % 5 == 0:
            await rpc.call("evm_mine")
        await asyncio.sleep(0.2)


@dataclass
class TrafficStats:
    sent: int = 0
    failed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class TrafficGenerator:
    """Sends a realistic mix of devnet transactions at a target rate."""

    MIX = (("transfer", 0.55), ("counter", 0.15), ("relay", 0.15), ("relay2", 0.07), ("deploy", 0.08))

    def __init__(self, rpc: RpcClient, *, seed: int = 7, wallets: int | None = None) -> None:
        self.rpc = rpc
        self.rng = random.Random(seed)
        self.wallets_wanted = wallets
        self.accounts: list[str] = []
        self.counters: list[str] = []
        self.relays: list[str] = []
        self.stats = TrafficStats()
        self.nonces: dict[str, int] = {}

    async def _sync_nonces(self, accounts: list[str]) -> None:
        counts = await self.rpc.batch([("eth_getTransactionCount", [a, "pending"]) for a in accounts])
        for a, c in zip(accounts, counts, strict=True):
            self.nonces[a] = int(c, 16)

    def _with_nonce(self, params: dict[str, Any]) -> dict[str, Any]:
        sender = params["from"]
        params["nonce"] = hex(self.nonces[sender])
        self.nonces[sender] += 1
        return params

    async def setup(self, *, mine: bool = True) -> None:
        """Find the wallets and deploy a few contracts (mined at once when ``mine``)."""
        accounts = await self.rpc.call("eth_accounts")
        if not accounts:
            raise RuntimeError("the node has no unlocked accounts to send from")
        self.accounts = accounts[: self.wallets_wanted] if self.wallets_wanted else accounts
        await self._sync_nonces(self.accounts)
        deployer = self.accounts[0]
        codes = [init_code(COUNTER_RUNTIME)] * 3 + [init_code(RELAY_RUNTIME)] * 3
        hashes = await self.rpc.batch(
            [("eth_sendTransaction", [self._with_nonce({"from": deployer, "data": c})]) for c in codes]
        )
        if mine:
            await self.rpc.call("evm_mine")
        receipts = await wait_receipts(self.rpc, hashes, mine=mine)
        addrs = [r["contractAddress"] for r in receipts]
        self.counters, self.relays = addrs[:3], addrs[3:]

    def make_tx(self) -> tuple[str, dict[str, Any]]:
        """One random transaction of the mix: (kind, eth_sendTransaction params)."""
        r = self.rng.random()
        acc = 0.0
        kind = self.MIX[-1][0]
        for name, share in self.MIX:
            acc += share
            if r < acc:
                kind = name
                break
        sender = self.rng.choice(self.accounts)
        if kind == "transfer":
            to = self.rng.choice([a for a in self.accounts if a != sender] or self.accounts)
            value = int(self.rng.lognormvariate(38, 2.0))  # ~ 0.03 ETH median, heavy tail
            return kind, {"from": sender, "to": to, "value": hex(max(1, min(value, 10**21)))}
        # explicit gas: an estimate would stop at what the outer call needs, starving the inner call
        gas = hex(120_000)
        if kind == "counter":
            return kind, {"from": sender, "to": self.rng.choice(self.counters), "data": "0xd09de08a", "gas": gas}
        if kind == "relay":
            target = self.rng.choice(self.counters)
            return kind, {"from": sender, "to": self.rng.choice(self.relays), "data": relay_calldata(target),
                          "gas": gas}
        if kind == "relay2":  # relay -> relay -> (address 0): a three-level call tree carrying value
            first, second = self.rng.sample(self.relays, 2)
            return kind, {"from": sender, "to": first, "data": relay_calldata(second), "value": hex(1000),
                          "gas": gas}
        return kind, {"from": sender, "data": init_code(COUNTER_RUNTIME)}

    async def send(self, n: int) -> list[str]:
        """Send ``n`` transactions of the mix in one batch; returns the hashes that were accepted."""
        txs = [self.make_tx() for _ in range(n)]
        results = await self.rpc.batch_settled([("eth_sendTransaction", [self._with_nonce(p)]) for _, p in txs])
        hashes = []
        resync = set()
        for (kind, params), res in zip(txs, results, strict=True):
            if isinstance(res, str):
                hashes.append(res)
                self.stats.sent += 1
                self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
            else:
                self.stats.failed += 1
                resync.add(params["from"])
                log.debug("traffic tx refused: %s", res)
        if resync:
            await self._sync_nonces(sorted(resync))
        return hashes

    async def run(self, rate: float, duration: float | None = None) -> None:
        """Send about ``rate`` transactions per second until cancelled or ``duration`` passes."""
        loop = asyncio.get_running_loop()
        end = None if duration is None else loop.time() + duration
        tick = 0.5
        while end is None or loop.time() < end:
            n = max(1, int(self.rng.gauss(rate * tick, (rate * tick) ** 0.5)))
            await self.send(n)
            await asyncio.sleep(tick)


async def fill_blocks(rpc: RpcClient, gen: TrafficGenerator, blocks: int, txs_per_block: int) -> int:
    """Mine ``blocks`` blocks of about ``txs_per_block`` mix transactions each (node not automining)."""
    total = 0
    for _ in range(blocks):
        sent = 0
        while sent < txs_per_block:
            sent += len(await gen.send(min(100, txs_per_block - sent)))
        await rpc.call("evm_mine")
        total += sent
    return total

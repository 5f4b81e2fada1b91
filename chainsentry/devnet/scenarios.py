"""A small DeFi world on the devnet (Solidity, compiled with solc: ``contracts/``), the background
traffic of its users, and real exploits of its deliberately vulnerable contracts.

The world: two ERC-20 tokens (USD and GOV), a constant-product pool of them, a lending market that
prices GOV collateral from the pool's spot reserves (``SpotOracle``), an ERC-3156 flash lender, an
NFT collection with a paid mint, an ETH bank that pays out before updating balances (reentrancy),
a treasury whose initialiser anyone can call again, and a fixed-denomination mixer.

Background traffic (at least 50 wallets): ETH transfers, token transfers, swaps, lending deposits,
borrows and repayments, NFT mints, bank deposits and withdrawals, token approvals.

Attacks, each a real exploit that moves real (devnet) value:

``reentrancy``        a fresh contract re-enters ``EtherBank.withdraw`` from its ``receive`` and drains it
``oracle``            flash-borrow USD, buy GOV (its spot price jumps), deposit it as collateral at the
                      inflated price, borrow more USD than was spent, repay the flash loan
``phishing``          victims approved a "claim" contract; the attacker sweeps their tokens with transferFrom
``takeover``          re-initialise the treasury with the attacker as owner and empty it, in one transaction
``mixer``             a never-seen wallet funded through the mixer deploys an attack contract and drains the bank
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode
from eth_hash.auto import keccak

from ingest import RpcClient

from .solc import load_artifacts
from .traffic import wait_receipts

log = logging.getLogger(__name__)

E18 = 10**18
MAX = 2**256 - 1
ATTACKS = ("reentrancy", "oracle", "phishing", "takeover", "mixer", "arbitrary-call")


class Abi:
    """Encodes constructor arguments and calls from the compiled ABIs."""

    def __init__(self, artifacts: dict[str, dict[str, Any]] | None = None) -> None:
        self.artifacts = artifacts or load_artifacts()

    def _types(self, contract: str, name: str) -> list[str]:
        for item in self.artifacts[contract]["abi"]:
            if item.get("type") == name or (item.get("type") == "function" and item.get("name") == name):
                return [i["type"] for i in item["inputs"]]
        if name == "constructor":
            return []
        raise KeyError(f"{contract} has no function {name}")

    def call(self, contract: str, fn: str, *args: Any) -> str:
        types = self._types(contract, fn)
        selector = keccak(f"{fn}({','.join(types)})".encode())[:4]
        return "0x" + (selector + encode(types, list(args))).hex()

    def deploy(self, contract: str, *args: Any) -> str:
        code = str(self.artifacts[contract]["bytecode"])
        types = self._types(contract, "constructor")
        return code + (encode(types, list(args)).hex() if types else "")


@dataclass
class World:
    usd: str = ""
    gov: str = ""
    pool: str = ""
    oracle: str = ""
    lending: str = ""
    lender: str = ""
    nft: str = ""
    bank: str = ""
    treasury: str = ""
    mixer: str = ""
    sweeper: str = ""
    router: str = ""
    victims: list[str] = field(default_factory=list)


@dataclass
class Attack:
    scenario: str
    tx_hashes: list[str]  # every transaction of the scenario, in order
    attack_tx: str  # the exploit itself
    attacker: str
    description: str

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "attack_tx": self.attack_tx, "tx_hashes": self.tx_hashes,
                "attacker": self.attacker, "description": self.description}


class DefiDevnet:
    """Deploys the world, sends its users' traffic, runs the attacks."""

    MIX = (("eth", 0.18), ("token", 0.2), ("swap", 0.2), ("lend", 0.16), ("nft", 0.1), ("bank", 0.07),
           ("approve", 0.05), ("router", 0.04))

    def __init__(self, rpc: RpcClient, *, seed: int = 11, wallets: int = 60) -> None:
        self.rpc = rpc
        self.rng = random.Random(seed)
        self.abi = Abi()
        self.wallets_wanted = wallets
        self.accounts: list[str] = []
        self.users: list[str] = []
        self.attackers: list[str] = []
        self.nonces: dict[str, int] = {}
        self.world = World()
        self.sent = 0
        self.failed = 0
        self.by_kind: dict[str, int] = {}
        self._borrowed: dict[str, int] = {}
        self._deposited: dict[str, int] = {}
        self._banked: set[str] = set()
        self.attack_count = 0

    # -- plumbing ---------------------------------------------------------------------------

    async def _nonce_sync(self, accounts: list[str]) -> None:
        counts = await self.rpc.batch([("eth_getTransactionCount", [a, "pending"]) for a in accounts])
        for a, c in zip(accounts, counts, strict=True):
            self.nonces[a] = int(c, 16)

    def _tx(self, sender: str, to: str | None, data: str = "0x", value: int = 0, gas: int = 600_000) -> dict[str, Any]:
        params: dict[str, Any] = {"from": sender, "data": data, "gas": hex(gas), "nonce": hex(self.nonces[sender])}
        if to is not None:
            params["to"] = to
        if value:
            params["value"] = hex(value)
        self.nonces[sender] += 1
        return params

    async def _send_all(self, txs: list[dict[str, Any]]) -> list[str]:
        results = await self.rpc.batch_settled([("eth_sendTransaction", [t]) for t in txs])
        bad = [t["from"] for t, r in zip(txs, results, strict=True) if not isinstance(r, str)]
        if bad:
            await self._nonce_sync(sorted(set(bad)))
        return [r for r in results if isinstance(r, str)]

    async def _mined(self, hashes: list[str], timeout: float = 60.0, mine: bool = False) -> list[dict[str, Any]]:
        return await wait_receipts(self.rpc, hashes, timeout, mine=mine)

    async def _step(self, txs: list[dict[str, Any]], mine: bool) -> list[dict[str, Any]]:
        hashes = await self._send_all(txs)
        if len(hashes) != len(txs):
            raise RuntimeError("the devnet refused a set-up transaction")
        if mine:
            await self.rpc.call("evm_mine")
        receipts = await self._mined(hashes, mine=mine)
        failed = [r["transactionHash"] for r in receipts if r.get("status") != "0x1"]
        if failed:
            raise RuntimeError(f"set-up transactions reverted: {failed}")
        return receipts

    # -- set-up -----------------------------------------------------------------------------

    async def setup(self, *, mine: bool = True, guardian: str | None = None) -> World:
        """Deploy the world and give the users tokens and approvals (mined at once when ``mine``;
        else the node's interval mining picks them up); ``guardian``: the address that may pause
        the bank (its owner, the deployer, unpauses it)."""
        accounts = await self.rpc.call("eth_accounts")
        self.accounts = accounts[: self.wallets_wanted]
        if len(self.accounts) < 8:
            raise RuntimeError("the devnet needs at least 8 unlocked accounts")
        self.attackers = self.accounts[-3:]
        self.users = self.accounts[1:-3]
        await self._nonce_sync(self.accounts)
        d = self.accounts[0]
        a, w = self.abi, self.world
        r = await self._step([self._tx(d, None, a.deploy("Token", "Dollar", "USD"), gas=3_000_000),
                              self._tx(d, None, a.deploy("Token", "Governance", "GOV"), gas=3_000_000),
                              self._tx(d, None, a.deploy("FlashLender"), gas=3_000_000),
                              self._tx(d, None, a.deploy("Collectibles"), gas=3_000_000),
                              self._tx(d, None, a.deploy("EtherBank"), gas=3_000_000),
                              self._tx(d, None, a.deploy("Treasury"), gas=3_000_000),
                              self._tx(d, None, a.deploy("Mixer"), gas=3_000_000),
                              self._tx(d, None, a.deploy("Router"), gas=3_000_000)], mine)
        w.usd, w.gov, w.lender, w.nft, w.bank, w.treasury, w.mixer, w.router = (x["contractAddress"] for x in r)
        r = await self._step([self._tx(d, None, a.deploy("Pool", w.gov, w.usd), gas=4_000_000)], mine)
        w.pool = r[0]["contractAddress"]
        r = await self._step([self._tx(d, None, a.deploy("SpotOracle", w.pool), gas=3_000_000)], mine)
        w.oracle = r[0]["contractAddress"]
        r = await self._step([self._tx(d, None, a.deploy("Lending", w.gov, w.usd, w.oracle), gas=4_000_000)], mine)
        w.lending = r[0]["contractAddress"]
        big = 10**9 * E18
        txs = [self._tx(d, w.usd, a.call("Token", "faucet", d, big)),
               self._tx(d, w.gov, a.call("Token", "faucet", d, big)),
               self._tx(d, w.usd, a.call("Token", "faucet", w.lender, 10**7 * E18)),
               self._tx(d, w.usd, a.call("Token", "faucet", w.lending, 10**7 * E18)),
               self._tx(d, w.usd, a.call("Token", "approve", w.pool, MAX)),
               self._tx(d, w.gov, a.call("Token", "approve", w.pool, MAX)),
               self._tx(d, w.treasury, "0x", value=50 * E18)]
        await self._step(txs, mine)
        await self._step([self._tx(d, w.pool, a.call("Pool", "addLiquidity", 100_000 * E18, 100_000 * E18))], mine)
        if guardian is not None:
            await self._step([self._tx(d, w.bank, a.call("EtherBank", "setGuardian", guardian))], mine)
        # every user: tokens, approvals for the pool, the lending market and the router (which users
        # send their own tokens through), a bank deposit for some
        txs = []
        for u in self.users + self.attackers:
            txs += [self._tx(d, w.usd, a.call("Token", "faucet", u, 5_000 * E18)),
                    self._tx(d, w.gov, a.call("Token", "faucet", u, 5_000 * E18))]
            for token in (w.usd, w.gov):
                txs += [self._tx(u, token, a.call("Token", "approve", w.pool, MAX)),
                        self._tx(u, token, a.call("Token", "approve", w.lending, MAX)),
                        self._tx(u, token, a.call("Token", "approve", w.router, MAX))]
        for u in self.users[:20]:
            txs.append(self._tx(u, w.bank, a.call("EtherBank", "deposit"), value=2 * E18))
            self._banked.add(u)
        for i in range(0, len(txs), 200):
            await self._step(txs[i : i + 200], mine)
        # the phishing contract, and victims who approve it ("claim your airdrop")
        phisher = self.attackers[1]
        r = await self._step([self._tx(phisher, None, a.deploy("Sweeper"), gas=2_000_000)], mine)
        w.sweeper = r[0]["contractAddress"]
        w.victims = self.rng.sample(self.users, 6)
        await self._step([self._tx(v, w.usd, a.call("Token", "approve", w.sweeper, MAX)) for v in w.victims], mine)
        return w

    # -- background traffic -------------------------------------------------------------------

    def make_tx(self) -> tuple[str, dict[str, Any]]:
        a, w, rng = self.abi, self.world, self.rng
        r, acc, kind = rng.random(), 0.0, self.MIX[-1][0]
        for name, share in self.MIX:
            acc += share
            if r < acc:
                kind = name
                break
        u = rng.choice(self.users)
        other = rng.choice([x for x in self.users if x != u])
        amount = int(rng.lognormvariate(3.0, 1.2) * E18)  # tokens: ~20 median, heavy tail
        if kind == "eth":
            return kind, self._tx(u, other, value=int(rng.lognormvariate(38, 1.8)), gas=21_000)
        if kind == "token":
            token = rng.choice((w.usd, w.gov))
            return kind, self._tx(u, token, a.call("Token", "transfer", other, min(amount, 200 * E18)), gas=80_000)
        if kind == "swap":
            token = rng.choice((w.usd, w.gov))
            return kind, self._tx(u, w.pool, a.call("Pool", "swapExactIn", token, min(amount, 300 * E18), 0, u),
                                  gas=200_000)
        if kind == "lend":
            deposited, borrowed = self._deposited.get(u, 0), self._borrowed.get(u, 0)
            if borrowed and rng.random() < 0.4:
                self._borrowed[u] = 0
                return kind, self._tx(u, w.lending, a.call("Lending", "repayBorrow", borrowed), gas=150_000)
            if deposited > 4 * (borrowed + amount // 10):
                self._borrowed[u] = borrowed + amount // 10
                return kind, self._tx(u, w.lending, a.call("Lending", "borrow", amount // 10), gas=200_000)
            self._deposited[u] = deposited + min(amount, 100 * E18)
            return kind, self._tx(u, w.lending, a.call("Lending", "mint", min(amount, 100 * E18)), gas=150_000)
        if kind == "nft":
            return kind, self._tx(u, w.nft, a.call("Collectibles", "mint"), value=E18 // 100, gas=150_000)
        if kind == "bank":
            if u in self._banked and rng.random() < 0.3:
                self._banked.discard(u)
                return kind, self._tx(u, w.bank, a.call("EtherBank", "withdraw"), gas=100_000)
            self._banked.add(u)
            return kind, self._tx(u, w.bank, a.call("EtherBank", "deposit"), value=E18 // 10, gas=100_000)
        if kind == "router":  # a user's own tokens sent on through the router (its intended use)
            token = rng.choice((w.usd, w.gov))
            pull = a.call("Token", "transferFrom", u, other, min(amount, 200 * E18))
            return kind, self._tx(u, w.router, a.call("Router", "execute", token, bytes.fromhex(pull[2:])),
                                  gas=120_000)
        spender = rng.choice((w.pool, w.lending))
        return kind, self._tx(u, rng.choice((w.usd, w.gov)), a.call("Token", "approve", spender, MAX), gas=60_000)

    async def send(self, n: int) -> list[str]:
        txs = [self.make_tx() for _ in range(n)]
        results = await self.rpc.batch_settled([("eth_sendTransaction", [p]) for _, p in txs])
        out, resync = [], set()
        for (kind, params), res in zip(txs, results, strict=True):
            if isinstance(res, str):
                out.append(res)
                self.sent += 1
                self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            else:
                self.failed += 1
                resync.add(params["from"])
        if resync:
            await self._nonce_sync(sorted(resync))
        return out

    async def run(self, rate: float, duration: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        end = None if duration is None else loop.time() + duration
        tick = 0.5
        while end is None or loop.time() < end:
            await self.send(max(1, int(self.rng.gauss(rate * tick, (rate * tick) ** 0.5))))
            await asyncio.sleep(tick)

    # -- attacks ------------------------------------------------------------------------------

    async def _deploy(self, sender: str, contract: str, *args: Any, value: int = 0) -> tuple[str, str]:
        [h] = await self._send_all([self._tx(sender, None, self.abi.deploy(contract, *args), value=value,
                                             gas=3_000_000)])
        [r] = await self._mined([h])
        if r.get("status") != "0x1":
            raise RuntimeError(f"deploying {contract} reverted")
        return h, str(r["contractAddress"])

    async def _attack_tx(self, params: dict[str, Any]) -> str:
        [h] = await self._send_all([params])
        return h

    async def attack(self, scenario: str) -> Attack:
        """Run one exploit; returns once its transactions are sent (the exploit may be pending)."""
        a, w = self.abi, self.world
        self.attack_count += 1
        if scenario == "reentrancy":
            eoa = self.attackers[0]
            dep, thief = await self._deploy(eoa, "ReentrancyAttacker", w.bank)
            h = await self._attack_tx(self._tx(eoa, thief, a.call("ReentrancyAttacker", "attack", 12), value=E18,
                                               gas=3_000_000))
            return Attack(scenario, [dep, h], h, eoa, "re-enters EtherBank.withdraw from receive()")
        if scenario == "oracle":
            eoa = self.attackers[0]
            dep, thief = await self._deploy(eoa, "OracleAttacker")
            h = await self._attack_tx(self._tx(eoa, thief, a.call(
                "OracleAttacker", "attack", w.lender, w.pool, w.lending, w.oracle, w.gov, w.usd, 60_000 * E18),
                gas=3_000_000))
            return Attack(scenario, [dep, h], h, eoa, "flash loan pumps the pool's spot price, borrows against it")
        if scenario == "phishing":
            eoa = self.attackers[1]
            h = await self._attack_tx(self._tx(eoa, w.sweeper, a.call("Sweeper", "claim", w.usd, w.victims),
                                               gas=2_000_000))
            return Attack(scenario, [h], h, eoa, f"sweeps {len(w.victims)} victims' USD with transferFrom")
        if scenario == "takeover":
            eoa = self.attackers[2]
            dep, thief = await self._deploy(eoa, "Takeover")
            h = await self._attack_tx(self._tx(eoa, thief, a.call("Takeover", "attack", w.treasury), gas=500_000))
            return Attack(scenario, [dep, h], h, eoa, "re-initialises the treasury and empties it")
        if scenario == "mixer":
            funder, fresh = self.attackers[2], "0x" + secrets.token_hex(20)
            note = secrets.token_bytes(32)
            commitment = keccak(note)
            [d1] = await self._send_all([self._tx(funder, w.mixer, a.call("Mixer", "deposit", commitment),
                                                  value=E18, gas=200_000)])
            await self._mined([d1])
            await self.rpc.call("anvil_impersonateAccount", [fresh])
            self.nonces[fresh] = 0
            [wd] = await self._send_all([self._tx(funder, w.mixer, a.call("Mixer", "withdraw", fresh, note),
                                                  gas=200_000)])
            await self._mined([wd])
            dep, thief = await self._deploy(fresh, "ReentrancyAttacker", w.bank)
            h = await self._attack_tx(self._tx(fresh, thief, a.call("ReentrancyAttacker", "attack", 12),
                                               value=E18 // 2, gas=3_000_000))
            return Attack(scenario, [d1, wd, dep, h], h, fresh,
                          "a wallet funded only through the mixer deploys an attack contract and drains the bank")
        if scenario == "arbitrary-call":
            eoa = self.attackers[1]
            held, victim = 0, ""
            others = [u for u in self.users if u not in w.victims]
            for victim in self.rng.sample(others, len(others)):
                held = int(await self.rpc.call("eth_call", [{"to": w.usd, "data": a.call("Token", "balanceOf", victim)},
                                                             "latest"]), 16)
                if held:  # a user who has USD left (an earlier round may have taken it all)
                    break
            pull = a.call("Token", "transferFrom", victim, eoa, held)
            h = await self._attack_tx(self._tx(eoa, w.router, a.call("Router", "execute", w.usd,
                                                                     bytes.fromhex(pull[2:])), gas=200_000))
            return Attack(scenario, [h], h, eoa, "makes the router pull a user's USD with the user's approval of it")
        raise ValueError(f"unknown attack scenario {scenario!r}; known: {', '.join(ATTACKS)}")

    async def resume(self) -> bool:
        """Unpause the bank if a guardian paused it (the team's all-clear); True if it was paused."""
        a, w, d = self.abi, self.world, self.accounts[0]
        paused = await self.rpc.call("eth_call", [{"to": w.bank, "data": a.call("EtherBank", "paused")}, "latest"])
        if int(paused, 16) == 0:
            return False
        await self._mined(await self._send_all([self._tx(d, w.bank, a.call("EtherBank", "unpause"))]))
        return True

    async def refill(self) -> None:
        """Top the victims up again (the bank and treasury too), so the attacks can repeat."""
        a, w, d = self.abi, self.world, self.accounts[0]
        txs = [self._tx(d, w.usd, a.call("Token", "faucet", v, 1_000 * E18)) for v in w.victims]
        txs.append(self._tx(d, w.treasury, "0x", value=20 * E18))
        txs.append(self._tx(d, w.bank, a.call("EtherBank", "deposit"), value=20 * E18))
        await self._send_all(txs)

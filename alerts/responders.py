"""The responders: a script, a guardian transaction, a Safe proposal (see :mod:`.responses`).

The transaction responder needs a :class:`ChainWriter` (the guardian's signer and an RPC client,
built by the composition root from the settings: the key never reaches this module). Its
transaction is priced to be mined before the pending transaction that triggered the alert: a
priority fee ``fee_bump_percent`` above the trigger's (nodes and builders order a block by it),
a fee cap above the trigger's, both within ``max_fee_gwei``. It is simulated first; a simulation
that reverts is reported and nothing is sent. A nonce already taken is retried once with a fresh
nonce; an underpriced replacement once with higher fees; nothing else is retried (a revert, no funds).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import orjson
from eth_abi.abi import encode
from eth_hash.auto import keccak

from .model import Alert, ResponseOutcome
from .responses import SafeSpec, ScriptSpec, TransactionSpec, outcome

GWEI = 10**9


class ChainError(RuntimeError):
    """A node's refusal; ``reason`` is ``nonce``, ``underpriced``, ``funds``, ``revert`` or ``other``."""

    def __init__(self, message: str, reason: str = "other") -> None:
        super().__init__(message)
        self.reason = reason


class ChainWriter(Protocol):
    """What a guardian transaction needs from the chain (implemented in ``chainsentry.guardian``)."""

    address: str
    chain_id: int

    async def pending_fees(self, tx_hash: str) -> tuple[int, int] | None: ...  # (max fee, priority fee)

    async def base_fee(self) -> int: ...

    async def simulate(self, to: str, data: str) -> int: ...  # gas estimate; ChainError("revert") if it reverts

    async def send(self, to: str, data: str, gas: int, max_fee: int, priority_fee: int,
                   fresh_nonce: bool = False) -> str: ...

    async def receipt_status(self, tx_hash: str, timeout: float) -> bool | None: ...  # None: not mined in time

    async def call(self, to: str, data: str) -> str: ...


def calldata(function: str, args: list[Any]) -> str:
    """ABI-encoded call of ``function`` (a signature: ``pause()``, ``setLimit(uint256)``).

    >>> calldata("pause()", [])
    '0x8456cb59'
    """
    name, _, rest = function.replace(" ", "").partition("(")
    types = [t for t in rest.rstrip(")").split(",") if t]
    if not name or len(types) != len(args):
        raise ValueError(f"{function!r}: give a signature such as pause() and one argument per type")
    values = [int(a, 0) if isinstance(a, str) and t.startswith(("uint", "int")) else a for t, a in zip(types, args,
                                                                                                      strict=True)]
    return "0x" + (keccak(f"{name}({','.join(types)})".encode())[:4] + encode(types, values)).hex()


class ScriptResponder:
    kind = "script"

    def __init__(self, spec: ScriptSpec, monitor: str) -> None:
        self.spec, self.name, self.max_per_hour = spec, f"{monitor}.{spec.name}", spec.max_per_hour

    async def respond(self, alert: Alert) -> AsyncIterator[ResponseOutcome]:
        try:
            proc = await asyncio.create_subprocess_exec(*self.spec.command, stdin=asyncio.subprocess.PIPE,
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.PIPE)
        except OSError as err:
            yield outcome(self, "failed", f"cannot start {self.spec.command[0]}: {err.strerror}")
            return
        try:
            _, err_out = await asyncio.wait_for(proc.communicate(alert.to_json()), self.spec.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            yield outcome(self, "failed", f"killed after the time limit of {self.spec.timeout:g}s")
            return
        tail = err_out.decode(errors="replace").strip()[-200:]
        if proc.returncode == 0:
            yield outcome(self, "ran", "exit status 0")
        else:
            yield outcome(self, "failed", f"exit status {proc.returncode}" + (f": {tail}" if tail else ""))


class TransactionResponder:
    kind = "transaction"

    def __init__(self, spec: TransactionSpec, monitor: str, writer: ChainWriter) -> None:
        self.spec, self.name, self.max_per_hour = spec, f"{monitor}.{spec.name}", spec.max_per_hour
        self.writer = writer
        self.data = calldata(spec.function, list(spec.args))

    async def fees(self, alert: Alert) -> tuple[int, int, str]:
        """(max fee, priority fee, how they were set): above the trigger's when it is pending."""
        s = self.spec
        base = await self.writer.base_fee()
        priority = int(s.min_priority_fee_gwei * GWEI)
        why = "priority fee at the minimum"
        theirs = await self.writer.pending_fees(alert.tx_hash) if alert.stage == "mempool" and alert.tx_hash else None
        if theirs is not None:
            their_max, their_priority = theirs
            priority = max(priority, their_priority * (100 + s.fee_bump_percent) // 100 + 1)
            why = f"priority fee {priority / GWEI:g} gwei above the trigger's {their_priority / GWEI:g}"
            max_fee = max(2 * base + priority, their_max * (100 + s.fee_bump_percent) // 100 + 1)
        else:
            max_fee = 2 * base + priority
        cap = int(s.max_fee_gwei * GWEI)
        if max_fee > cap:
            max_fee, priority = cap, min(priority, cap)
            why += f" (capped at {s.max_fee_gwei:g} gwei)"
        return max_fee, priority, why

    async def respond(self, alert: Alert) -> AsyncIterator[ResponseOutcome]:
        s, w = self.spec, self.writer
        try:
            gas = await w.simulate(s.contract, self.data)
        except ChainError as err:
            yield outcome(self, "failed", f"simulation of {s.function} on {s.contract} failed, not sent: {err}")
            return
        if s.dry_run:
            yield outcome(self, "simulated", f"{s.function} on {s.contract} from {w.address} would succeed "
                                             f"(gas {gas}); dry run: not sent")
            return
        max_fee, priority, why = await self.fees(alert)
        try:
            tx_hash = await self._send(gas, max_fee, priority)
        except ChainError as err:
            yield outcome(self, "failed", f"{s.function} on {s.contract} not sent: {err}")
            return
        yield outcome(self, "sent", f"{s.function} on {s.contract} from {w.address}; {why}", tx_hash)
        if s.wait_receipt <= 0:
            return
        status = await w.receipt_status(tx_hash, s.wait_receipt)
        if status is None:
            yield outcome(self, "sent", f"not mined within {s.wait_receipt:g}s", tx_hash)
        else:
            yield outcome(self, "mined" if status else "reverted", f"{s.function} on {s.contract}", tx_hash)

    async def _send(self, gas: int, max_fee: int, priority: int) -> str:
        w, gas = self.writer, gas * 12 // 10 + 10_000
        try:
            return await w.send(self.spec.contract, self.data, gas, max_fee, priority)
        except ChainError as err:
            if err.reason == "nonce":  # another transaction took the nonce: once more with a fresh one
                return await w.send(self.spec.contract, self.data, gas, max_fee, priority, fresh_nonce=True)
            if err.reason == "underpriced":  # once more, higher (within the cap)
                cap = int(self.spec.max_fee_gwei * GWEI)
                return await w.send(self.spec.contract, self.data, gas, min(cap, max_fee * 2),
                                    min(cap, priority * 2), fresh_nonce=True)
            raise


SAFE_TX_TYPEHASH = keccak(b"SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,"
                          b"uint256 baseGas,uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)")
DOMAIN_TYPEHASH = keccak(b"EIP712Domain(uint256 chainId,address verifyingContract)")
ZERO = "0x" + "00" * 20


def safe_tx_hash(chain_id: int, safe: str, to: str, data: str, nonce: int) -> str:
    """The EIP-712 hash the Safe's owners sign (Safe 1.3+), for a call with no value or refund."""
    domain = keccak(encode(["bytes32", "uint256", "address"], [DOMAIN_TYPEHASH, chain_id, safe]))
    body = keccak(encode(
        ["bytes32", "address", "uint256", "bytes32", "uint8", "uint256", "uint256", "uint256", "address", "address",
         "uint256"],
        [SAFE_TX_TYPEHASH, to, 0, keccak(bytes.fromhex(data[2:])), 0, 0, 0, 0, ZERO, ZERO, nonce]))
    return "0x" + keccak(b"\x19\x01" + domain + body).hex()


class SafeResponder:
    kind = "safe"

    def __init__(self, spec: SafeSpec, monitor: str, writer: ChainWriter, base: Path) -> None:
        self.spec, self.name, self.max_per_hour = spec, f"{monitor}.{spec.name}", spec.max_per_hour
        self.writer = writer
        self.data = calldata(spec.function, list(spec.args))
        self.out = (base / spec.out_dir) if not Path(spec.out_dir).is_absolute() else Path(spec.out_dir)

    async def respond(self, alert: Alert) -> AsyncIterator[ResponseOutcome]:
        s = self.spec
        nonce = int(await self.writer.call(s.safe, "0xaffed0e0"), 16)  # nonce()
        tx = {"safe": s.safe, "chainId": self.writer.chain_id, "to": s.contract, "value": "0", "data": self.data,
              "operation": 0, "safeTxGas": "0", "baseGas": "0", "gasPrice": "0", "gasToken": ZERO,
              "refundReceiver": ZERO, "nonce": nonce,
              "safeTxHash": safe_tx_hash(self.writer.chain_id, s.safe, s.contract, self.data, nonce),
              "origin": f"chainsentry alert {alert.id}", "function": s.function, "created_at": time.time()}
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{hashlib.sha256(alert.id.encode()).hexdigest()[:16]}-{s.name}.json"
        path.write_bytes(orjson.dumps(tx, option=orjson.OPT_INDENT_2))
        yield outcome(self, "proposed", f"{s.function} on {s.contract} through Safe {s.safe}, nonce {nonce}: "
                                        f"safeTxHash {tx['safeTxHash']} written to {path}")

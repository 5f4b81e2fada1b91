"""The guardian: the key that signs response transactions, and the :class:`~alerts.responders.ChainWriter`
the transaction and Safe responders use (an RPC client of its own, on the service's nodes).

The key comes from ``CHAINSENTRY_GUARDIAN_KEY`` or an encrypted keystore (``guardian.keystore``,
unlocked with ``CHAINSENTRY_GUARDIAN_PASSWORD``), is turned into a signer once, and is never
kept as text, logged, returned, put in a metric or a snapshot, or quoted in an error: a key that
does not load is one clear error naming the variable or file, without the key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from alerts.responders import ChainError
from ingest import RpcClient
from ingest.rpc import RpcError, RpcResponseError

from .config import ConfigError, Secrets, Settings

log = logging.getLogger(__name__)


class Guardian:
    """A signer whose key cannot be read back through it (``repr`` shows the address only)."""

    __slots__ = ("__account", "address")

    def __init__(self, account: Any) -> None:
        self.__account = account
        self.address: str = account.address.lower()

    def sign(self, tx: dict[str, Any]) -> tuple[str, str]:
        """(raw transaction, hash) of ``tx`` signed."""
        signed = self.__account.sign_transaction(tx)
        return "0x" + signed.raw_transaction.hex().removeprefix("0x"), "0x" + signed.hash.hex().removeprefix("0x")

    def __repr__(self) -> str:
        return f"Guardian({self.address})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("the guardian key is not serialisable")


def load_guardian(settings: Settings, secrets: Secrets) -> Guardian | None:
    """The guardian from the environment or keystore (None if neither is set)."""
    keystore = settings.guardian.keystore
    if keystore is not None:
        password = Secrets.reveal(secrets.guardian_password)
        if password is None:
            raise ConfigError(f"guardian keystore {keystore}: set CHAINSENTRY_GUARDIAN_PASSWORD to unlock it")
        try:
            data = json.loads(keystore.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"guardian keystore {keystore}: not a readable keystore file ({type(err).__name__})") \
                from None
        try:
            return Guardian(Account.from_key(Account.decrypt(data, password)))
        except ValueError:
            raise ConfigError(f"guardian keystore {keystore}: wrong password, or not a keystore file") from None
        except Exception:
            raise ConfigError(f"guardian keystore {keystore}: not a valid keystore file") from None
    key = Secrets.reveal(secrets.guardian_key)
    if key is None:
        return None
    try:
        return Guardian(Account.from_key(key.strip()))
    except Exception:
        raise ConfigError("CHAINSENTRY_GUARDIAN_KEY is not a valid private key (32 bytes of hex)") from None


def _reason(err: RpcError) -> str:
    text = str(err).lower()
    if "nonce too low" in text or "nonce has already been used" in text:
        return "nonce"
    if "underpriced" in text or "replacement" in text:
        return "underpriced"
    if "insufficient funds" in text:
        return "funds"
    if "revert" in text or (isinstance(err, RpcResponseError) and err.code == 3):
        return "revert"
    return "other"


class RpcChainWriter:
    """The guardian's view of the chain (see :class:`alerts.responders.ChainWriter`)."""

    def __init__(self, rpc: RpcClient, guardian: Guardian | None, chain_id: int) -> None:
        self.rpc = rpc
        self.guardian = guardian
        self.address = guardian.address if guardian is not None else "0x" + "00" * 20
        self.chain_id = chain_id
        self._nonce: int | None = None
        self._lock = asyncio.Lock()

    async def pending_fees(self, tx_hash: str) -> tuple[int, int] | None:
        try:
            tx = await self.rpc.call("eth_getTransactionByHash", [tx_hash])
        except RpcError:
            return None
        if not isinstance(tx, dict):
            return None
        if tx.get("maxPriorityFeePerGas") is not None:
            return int(tx["maxFeePerGas"], 16), int(tx["maxPriorityFeePerGas"], 16)
        if tx.get("gasPrice") is not None:
            price = int(tx["gasPrice"], 16)
            return price, max(0, price - await self.base_fee())
        return None

    async def base_fee(self) -> int:
        block = await self.rpc.call("eth_getBlockByNumber", ["pending", False])
        fee = (block or {}).get("baseFeePerGas") if isinstance(block, dict) else None
        return int(fee, 16) if fee else 0

    async def simulate(self, to: str, data: str) -> int:
        call = {"from": self.address, "to": to, "data": data}
        try:
            await self.rpc.call("eth_call", [call, "pending"])
            return int(await self.rpc.call("eth_estimateGas", [call, "pending"]), 16)
        except RpcError as err:
            raise ChainError(str(err), _reason(err)) from None

    async def call(self, to: str, data: str) -> str:
        return str(await self.rpc.call("eth_call", [{"to": to, "data": data}, "latest"]))

    async def send(self, to: str, data: str, gas: int, max_fee: int, priority_fee: int,
                   fresh_nonce: bool = False) -> str:
        if self.guardian is None:
            raise ChainError("no guardian key: set CHAINSENTRY_GUARDIAN_KEY or guardian.keystore")
        async with self._lock:  # one nonce at a time
            if self._nonce is None or fresh_nonce:
                self._nonce = int(await self.rpc.call("eth_getTransactionCount", [self.address, "pending"]), 16)
            tx = {"to": to_checksum_address(to), "data": data, "value": 0, "gas": gas, "maxFeePerGas": max_fee,
                  "maxPriorityFeePerGas": priority_fee, "nonce": self._nonce, "chainId": self.chain_id, "type": 2}
            raw, tx_hash = self.guardian.sign(tx)
            try:
                await self.rpc.call("eth_sendRawTransaction", [raw])
            except RpcError as err:
                if "already known" not in str(err).lower():  # a retried send the node already has is sent
                    self._nonce = None
                    raise ChainError(str(err), _reason(err)) from None
            self._nonce += 1
            return tx_hash

    async def receipt_status(self, tx_hash: str, timeout: float) -> bool | None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            try:
                r = await self.rpc.call("eth_getTransactionReceipt", [tx_hash])
            except RpcError:
                r = None
            if isinstance(r, dict) and r.get("blockNumber"):
                return r.get("status") == "0x1"
            await asyncio.sleep(0.25)
        return None

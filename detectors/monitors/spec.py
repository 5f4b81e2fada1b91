"""What a monitor is, as written in the config file or sent to the API (validated at load).

A monitor watches addresses and raises an alert for a transaction that touches them when its
transaction condition holds and any of its matchers match (none given: every such transaction):

- ``functions``: a function called on a watched address anywhere in the call tree (through proxies,
  routers and multicalls), with a condition over its decoded arguments;
- ``events``: a log emitted by a watched address, with a condition over its decoded arguments;
- ``outflows``: the net outflow of ETH or a token from a watched address in the transaction
  (``amount``) and summed over a window of blocks (``window``);
- ``anomaly``: the detectors' fused score, or named rules, on the transaction;
- ``failures``: a spike of failed transactions touching the watched addresses.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _address(value: str) -> str:
    if not isinstance(value, str) or not ADDRESS.match(value):
        raise ValueError(f"{value!r} is not an address (0x and 40 hex digits)")
    return value.lower()


class Token(_Strict):
    """A token the conditions and outflows can name by symbol (``1e6 USDC``)."""

    address: str
    decimals: int = Field(18, ge=0, le=36)

    _check = field_validator("address")(classmethod(lambda cls, v: _address(v)))


class FunctionMatch(_Strict):
    function: str  # a name, or a signature when the name is overloaded
    where: str | None = None  # over the arguments by name, call.{from,to,value,depth,failed}, tx.*


class EventMatch(_Strict):
    event: str
    where: str | None = None  # over the arguments by name, log.{address,index}, tx.*


class OutflowMatch(_Strict):
    asset: str = "ETH"  # ETH, a symbol from tokens, or a token address
    where: str = "amount > 0"  # over amount (this transaction), window (summed), asset, address
    window_blocks: int = Field(1, ge=1, le=100_000)


class FailureMatch(_Strict):
    """A spike of failed transactions: ``min_count`` or more touching the watched addresses within
    ``window_blocks`` (counted at block stage)."""

    min_count: int = Field(5, ge=1, le=100_000)
    window_blocks: int = Field(10, ge=1, le=100_000)


class AnomalyMatch(_Strict):
    min_score: float | None = Field(None, ge=0.0, le=1.0)  # the detectors' fused score
    rules: list[str] = []  # any of these rules held


class MonitorSpec(_Strict):
    name: str
    chain_id: int | None = None  # only on this chain (None: any)
    addresses: list[str] = Field(min_length=1)
    abis: list[str] = []  # built-in names (erc20, ownable, ...) or JSON files
    tokens: dict[str, Token] = {}
    functions: list[FunctionMatch] = []
    events: list[EventMatch] = []
    outflows: list[OutflowMatch] = []
    anomaly: AnomalyMatch | None = None
    failures: FailureMatch | None = None
    status: Literal["any", "success", "failed"] = "any"
    where: str | None = None  # over tx.{hash,from,to,value,nonce,failed,...}, score, rules
    severity: Literal["info", "low", "medium", "high", "critical"] = "high"
    type: Literal["exploit", "suspicious", "scam", "info"] = "suspicious"
    title: str = "{monitor}: {match}"  # {monitor} {match} {address} {tx_hash} {stage}
    subscriptions: list[str] | None = None  # which receive its alerts (None: every subscription)
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("a monitor name is 1-64 letters, digits, '_', '.', '-'")
        return v

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        return [_address(a) for a in v]

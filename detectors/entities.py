"""What the stream learned about its entities, and the one view feature units read it through.

:class:`EntityState` keeps bounded per-entity memory (LRU, ``max_entities`` each): for each
contract called, how often, with which selectors, by how many distinct senders (up to 32: a public
router is called by many, an attack contract by its owner) and a running mean and variance
(Welford) of the call-tree size it sees; for each sender, how many transactions; for each selector,
how often it was seen; for each contract whose creation the stream saw, its creator and when.
It learns a transaction after the transaction is scored.

:class:`EntityView` is what :class:`detectors.units.base.EntityUnit` units (and trace units, through
``Trace.entities``) read: the state above and the wallet profiles (:mod:`.wallets`), without
refreshing anything in the LRUs.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ingest.events import Tx

from .base import dict_get, move_to_end
from .wallets import Profile, WalletBehaviour

WARM_AFTER = 200  # transactions before novelty means anything: at the start everything is new


class ContractStats:
    """What the stream saw of one contract's callers (see the module docstring)."""

    __slots__ = ("callers", "calls", "m2", "mean", "n", "selectors")

    def __init__(self) -> None:
        self.calls = 0  # calls with a selector
        self.selectors: dict[str, int] = {}  # selector -> calls (up to max_selectors_per_contract)
        self.callers: set[str] = set()  # distinct senders (up to max_callers_per_contract)
        self.n = 0  # traced calls, and the running mean and M2 of log1p(frames) over them
        self.mean = 0.0
        self.m2 = 0.0

    def frames_std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.calls, self.selectors, self.callers, self.n, self.mean, self.m2)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.calls, self.selectors, self.callers, self.n, self.mean, self.m2 = state


def _counter() -> list[int]:
    return [0]


class _LRU(OrderedDict[str, Any]):
    def __init__(self, limit: int = 0) -> None:  # a default: pickle rebuilds it empty, then restores
        super().__init__()
        self.limit = limit


def _touch(lru: _LRU, key: str, default: Callable[[], Any] | None, new: Any = None) -> Any:
    """The value at ``key`` of ``lru``, now the most recent; if absent, ``default()`` (or ``new``)
    is stored first, evicting the least recent past the limit."""
    value = dict_get(lru, key)
    if value is None:
        value = default() if default is not None else new
        lru[key] = value
        if len(lru) > lru.limit:
            lru.popitem(last=False)
    else:
        move_to_end(lru, key)
    return value


class EntityState:
    """Bounded per-contract, per-sender and per-selector memory, learned online."""

    def __init__(self, max_entities: int = 200_000, max_selectors_per_contract: int = 64,
                 max_callers_per_contract: int = 32) -> None:
        self.max_entities = max_entities
        self.max_selectors_per_contract = max_selectors_per_contract
        self.max_callers_per_contract = max_callers_per_contract
        self.contracts: _LRU = _LRU(max_entities)  # address -> ContractStats
        self.senders: _LRU = _LRU(max_entities)  # address -> [txs]
        self.selectors: _LRU = _LRU(max_entities)  # selector -> [count]
        self.created: _LRU = _LRU(max_entities)  # contract -> [creator, creation time]
        self.seen = 0

    def learn(self, tx: Tx, frames: float | None = None, now: float = 0.0, creates: float | None = None) -> None:
        """Learn ``tx`` (``frames``, ``creates``: its call-tree size and creations, if already counted;
        ``now``: its time)."""
        self.seen += 1
        sender, to = tx.sender, tx.to
        if sender is not None:  # contracts it created, top-level or inside its call tree
            if to is None and tx.receipt is not None and tx.receipt.contract_address is not None:
                _touch(self.created, tx.receipt.contract_address, None, [sender, now])
            if tx.trace is not None and (to is None or (frames or 0) > 1) and creates != 0:
                for f in tx.trace.walk():
                    if f.type in ("CREATE", "CREATE2") and f.to is not None and f.error is None:
                        _touch(self.created, f.to, None, [sender, now])
            _touch(self.senders, sender, _counter)[0] += 1
        if to is not None and len(tx.input) >= 10:
            sel = tx.input[:10]
            c: ContractStats = _touch(self.contracts, to, ContractStats)
            c.calls += 1
            if tx.trace is not None:  # running mean and variance of the tree size this contract sees
                v = math.log1p(float(len(tx.trace.walk()) if frames is None else frames))
                c.n += 1
                delta = v - c.mean
                c.mean += delta / c.n
                c.m2 += delta * (v - c.mean)
            if sel in c.selectors or len(c.selectors) < self.max_selectors_per_contract:
                c.selectors[sel] = c.selectors.get(sel, 0) + 1
            if sender is not None and len(c.callers) < self.max_callers_per_contract:
                c.callers.add(sender)
            _touch(self.selectors, sel, _counter)[0] += 1

    def state(self) -> dict[str, Any]:
        return {"contracts": self.contracts, "senders": self.senders, "selectors": self.selectors,
                "created": self.created, "seen": self.seen}

    def load_state(self, state: dict[str, Any]) -> None:
        self.contracts, self.senders, self.selectors = state["contracts"], state["senders"], state["selectors"]
        self.created = state["created"]
        self.seen = int(state["seen"])

    def sizes(self) -> dict[str, int]:
        return {"contracts": len(self.contracts), "senders": len(self.senders), "selectors": len(self.selectors),
                "created": len(self.created)}


class EntityView:
    """Read-only access to the entity state and wallet profiles (see the module docstring)."""

    __slots__ = ("state", "wallets")

    def __init__(self, state: EntityState, wallets: WalletBehaviour) -> None:
        self.state = state
        self.wallets = wallets

    @property
    def warm(self) -> bool:
        """Whether the stream has seen enough for novelty to mean something."""
        return self.state.seen >= WARM_AFTER

    def contract(self, address: str | None) -> ContractStats | None:
        return self.state.contracts.get(address) if address is not None else None

    def is_called_contract(self, address: str | None) -> bool:
        """Whether the stream saw ``address`` called with a function (a contract, not a wallet)."""
        return address in self.state.contracts

    def sender_txs(self, address: str) -> int:
        s = self.state.senders.get(address)
        return s[0] if s else 0

    def selector_count(self, selector: str) -> int:
        s = self.state.selectors.get(selector)
        return s[0] if s else 0

    def creation(self, address: str | None) -> tuple[str, float] | None:
        """(creator, creation time) of a contract whose creation the stream saw."""
        born = self.state.created.get(address) if address is not None else None
        return (born[0], born[1]) if born is not None else None

    def profile(self, address: str) -> Profile | None:
        return self.wallets.profiles.get(address)

"""Online detectors learned from the stream itself: river HalfSpaceTrees and entity novelty.

* :class:`HSTDetector` runs river's HalfSpaceTrees on log-scaled features with fixed limits (no
  scaler to warm up); it is cold for its first ``window_size`` transactions, when HST's reference
  mass is still empty (river scores 0 there: warm-up is explicit).
* :class:`EntityState` keeps bounded per-entity memory (LRU, ``max_entities`` each): for each
  contract called, how often and with which selectors; for each sender, how many transactions;
  for each selector, how often it was seen. :meth:`EntityState.observe` adds novelty features to a
  transaction's feature dict *before* the transaction is learned: a first call to a contract, a
  selector never seen on it, a new sender, a globally rare selector, how many distinct senders
  called the contract before (up to 32): a public router is called by many, an attack contract by
  its owner; and a running mean and variance (Welford) of the call-tree size each contract sees,
  so a contract suddenly called with a far larger tree than usual stands out (z-score, once the
  contract has 20 traced calls). Who created each contract, when the stream saw it: its deployer
  calling its initialiser or ownership function directly is set-up, and is taken off
  ``takeover_calls``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from ingest.events import Tx

from .base import Batch, Contribution, Features, Score, dict_get, move_to_end
from .features import TAKEOVER_SELECTORS

# features HST sees, each log1p-scaled into [0, limit]
HST_FEATURES: tuple[tuple[str, float], ...] = (
    ("frames", 8.0), ("depth", 4.0), ("contracts", 6.0), ("delegatecalls", 6.0), ("staticcalls", 7.0),
    ("max_repeat", 6.0), ("reentries", 6.0), ("token_moves", 6.0), ("tokens_touched", 4.0),
    ("balance_checks", 6.0), ("eth_to_sender", 10.0), ("value_eth", 10.0), ("calldata_bytes", 10.0),
    ("creates", 3.0), ("flash_calls", 3.0), ("borrow_repay", 3.0),
)


class HSTDetector:
    """river HalfSpaceTrees on log-scaled features (see module docstring)."""

    name = "hst"
    calibrated = True

    def __init__(self, n_trees: int = 10, height: int = 6, window_size: int = 250, seed: int = 42) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self._model = self._new()
        self._seen = 0
        self._batch: tuple[Batch, dict[int, dict[str, float]]] | None = None

    def _new(self) -> Any:
        # imported here: river's package imports scipy.stats (~1.4 s), which the commands that build
        # no engine (--help, evaluate, record, the ingest and alert workers) should not wait for
        from river import anomaly

        limits: dict[Hashable, tuple[float, float]] = {name: (0.0, hi) for name, hi in HST_FEATURES}
        return anomaly.HalfSpaceTrees(n_trees=self.n_trees, height=self.height, window_size=self.window_size,
                                      limits=limits, seed=self.seed)

    @staticmethod
    def _x(x: Features) -> dict[str, float]:
        out = {}
        for name, hi in HST_FEATURES:
            v = x.get(name)
            out[name] = min(hi, math.log1p(v)) if v is not None and v > 0 else 0.0
        return out

    @property
    def warm(self) -> bool:
        return self._seen >= self.window_size

    def _scaled(self, batch: Batch) -> dict[int, dict[str, float]]:
        """The model's input for the batch's traced transactions (computed once per batch: it is
        scored, then learned)."""
        cached = self._batch
        if cached is not None and cached[0] is batch:
            return cached[1]
        features = batch.features
        scaled = {i: self._x(features[i]) for i in batch.traced}
        self._batch = (batch, scaled)
        return scaled

    def score_many(self, batch: Batch) -> list[Score | None]:
        out: list[Score | None] = [None] * batch.size
        if not batch.traced:
            return out
        scaled = self._scaled(batch)
        if self.warm:
            score_one = self._model.score_one
            for i, hx in scaled.items():
                out[i] = Score(float(score_one(hx)))
        return out

    def learn_many(self, batch: Batch, rows: Sequence[int]) -> None:
        if not batch.traced:
            return
        scaled = self._scaled(batch)
        learn_one = self._model.learn_one
        for i in rows:
            hx = scaled.get(i)
            if hx is not None:
                learn_one(hx)
                self._seen += 1
        self._batch = None

    def explain(self, x: Features) -> list[Contribution]:
        return []  # HST has no per-feature attribution; fusion explains with the other detectors

    def state(self) -> dict[str, Any]:
        return {"model": self._model, "seen": self._seen}

    def load_state(self, state: dict[str, Any]) -> None:
        self._model = state["model"]
        self._seen = int(state["seen"])


def _counter() -> list[int]:
    return [0]


def _contract() -> list[Any]:  # see EntityState.contracts
    return [0, {}, set(), 0, 0.0, 0.0]


class _LRU(OrderedDict[str, Any]):
    def __init__(self, limit: int = 0) -> None:  # a default: pickle rebuilds it empty, then restores
        super().__init__()
        self.limit = limit


def _touch(lru: _LRU, key: str, default: Callable[[], Any] | None, new: Any = None) -> Any:
    """The value at ``key`` of ``lru``, now the most recent; if absent, ``default()`` (or ``new``)
    is stored first, evicting the least recent past the limit. (A function, not a method: the
    compiled module calls it through C.)"""
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
        # address -> [calls, {selector: count}, {callers}, n, mean, m2 of log1p(frames)] (Welford)
        self.contracts: _LRU = _LRU(max_entities)
        self.senders: _LRU = _LRU(max_entities)  # address -> [txs]
        self.selectors: _LRU = _LRU(max_entities)  # selector -> [count]
        self.created: _LRU = _LRU(max_entities)  # contract -> [creator, creation time]
        self.seen = 0

    def observe(self, tx: Tx, x: dict[str, float], now: float = 0.0) -> None:
        """Add novelty features for ``tx`` to ``x`` (from what was learned before it)."""
        to = tx.to
        born = dict_get(self.created, to) if to is not None else None
        if born is not None:  # a contract whose creation this stream saw
            own = born[0] == tx.sender
            x["to_created_by_sender"] = 1.0 if own else 0.0
            x["to_age_hours"] = max(0.0, now - born[1]) / 3600
            if own and x.get("takeover_calls") and tx.input[:10] in TAKEOVER_SELECTORS:  # as the trace counted it
                # its deployer initialising it, or handing its ownership on: set-up, not a takeover
                x["takeover_calls"] -= 1.0
        if self.seen < 200:
            return  # cold: everything is new at the start of a stream
        if to is not None and len(tx.input) >= 10:
            c = dict_get(self.contracts, to)
            x["contract_calls_before"] = float(c[0]) if c else 0.0
            x["contract_callers_before"] = float(len(c[2])) if c else 0.0
            frames = x.get("frames")
            if c and frames is not None and c[3] >= 20:
                std = math.sqrt(c[5] / (c[3] - 1))
                x["frames_z_on_contract"] = (math.log1p(frames) - c[4]) / max(std, 0.25)
            sel = tx.input[:10]
            x["selector_new_on_contract"] = 1.0 if c and c[0] >= 20 and sel not in c[1] else 0.0
            s = dict_get(self.selectors, sel)
            x["selector_seen_before"] = float(s[0]) if s else 0.0
        if tx.sender is not None:
            s = dict_get(self.senders, tx.sender)
            x["sender_txs_before"] = float(s[0]) if s else 0.0

    def learn(self, tx: Tx, frames: float | None = None, now: float = 0.0, creates: float | None = None) -> None:
        """Learn ``tx`` (``frames``, ``creates``: its call-tree size and creations, if already counted;
        ``now``: its time)."""
        self.seen += 1
        if tx.sender is not None:  # contracts it created, top-level or inside its call tree
            if tx.to is None and tx.receipt is not None and tx.receipt.contract_address is not None:
                _touch(self.created, tx.receipt.contract_address, None, [tx.sender, now])
            if tx.trace is not None and (tx.to is None or (frames or 0) > 1) and creates != 0:
                for f in tx.trace.walk():
                    if f.type in ("CREATE", "CREATE2") and f.to is not None and f.error is None:
                        _touch(self.created, f.to, None, [tx.sender, now])
        if tx.sender is not None:
            _touch(self.senders, tx.sender, _counter)[0] += 1
        to = tx.to
        if to is not None and len(tx.input) >= 10:
            sel = tx.input[:10]
            c = _touch(self.contracts, to, _contract)
            c[0] += 1
            if tx.trace is not None:  # running mean and variance of the tree size this contract sees
                v = math.log1p(float(len(tx.trace.walk()) if frames is None else frames))
                c[3] += 1
                delta = v - c[4]
                c[4] += delta / c[3]
                c[5] += delta * (v - c[4])
            if sel in c[1] or len(c[1]) < self.max_selectors_per_contract:
                c[1][sel] = c[1].get(sel, 0) + 1
            if tx.sender is not None and len(c[2]) < self.max_callers_per_contract:
                c[2].add(tx.sender)
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

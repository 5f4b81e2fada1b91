"""Per-contract behaviour baselines, learned online from the stream: a transaction scores high when
the contracts and holders it touches behave far from their own history.

For every address a transaction with a call tree touches, a :class:`Baseline` keeps:

- the size of the call tree under each call into it (frames below and including the call), as the
  largest ``TOP`` sizes seen and a count: its 99th percentile is exact up to ``100 * TOP``
  observations and an upper bound beyond (the ``TOP``-th largest), so a busy router's ordinary
  spread never reads as an outlier;
- for each asset (ETH, or a token moved by transfer/transferFrom, wrapped or unwrapped), its net
  outflows per transaction, the same way.

A transaction is scored against them before it is learned. Per address: its largest net outflow
of an asset against its 99th percentile outflow of that asset, once it has made ``min_outflows``
(two evidence units per doubling past 4x, at most 8: 16x gives 4, 64x gives 8), and the call tree
under it against its usual size (two units per doubling past 2x, at most 6). The transaction's
raw score is the largest address total, in evidence units like the rule file's; fusion adds it
with the detector's weight, apart from the others' negative evidence (the rules' "a familiar
public service" must not hide a drain of a public vault, whose own normal already accounts for
its traffic). Explained as "ETH out of 0x12ab…cdef: 40x its 99th percentile (n=312)". An address
seen fewer than ``min_history`` times says nothing: one the stream has not learned is neither
normal nor anomalous here (an attack contract, for one, is new). The sender is learned but not
scored: what it does with its own funds is its choice, and its behaviour is the wallet detector's.

Memory is bounded: an LRU of ``max_addresses`` baselines, each keeping at most ``MAX_ASSETS``
assets: ~0.6 KB for an address seen with one asset, ~9 KB at the caps (16 values for the call tree
and each of 8 assets), so at most ~450 MB at the default 50,000 (`benchmarks/bench_baseline_memory.py`).
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from .base import Batch, Contribution, Features, Score, dict_get, move_to_end
from .traversal import Trace, walk

TOP = 16  # the largest observations kept per series: p99 exact up to 1,600 observations
MAX_ASSETS = 8  # assets followed per address (the first seen)
ETH = "ETH"


class Series:
    """A count and the ``TOP`` largest values of a positive series (ascending)."""

    __slots__ = ("n", "top")

    def __init__(self) -> None:
        self.n = 0
        self.top: list[int] = []

    def add(self, value: int) -> None:
        self.n += 1
        top = self.top
        if len(top) < TOP:
            bisect.insort(top, value)
        elif value > top[0]:
            top.pop(0)
            bisect.insort(top, value)

    def p99(self) -> int:
        """The 99th percentile: the ``n // 100 + 1``-th largest (the smallest kept, past the cap)."""
        top = self.top
        return top[max(0, len(top) - 1 - self.n // 100)]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_series, (self.n, self.top))


def _series(n: int, top: list[int]) -> Series:
    s = Series()
    s.n, s.top = n, top
    return s


class Baseline:
    """What the stream learned of one address (see the module docstring)."""

    __slots__ = ("assets", "seen", "subtree")

    def __init__(self) -> None:
        self.seen = 0  # transactions that touched it
        self.subtree = Series()  # the call tree under a call into it
        self.assets: dict[str, Series] = {}  # asset -> its net outflows per transaction

    def __reduce__(self) -> tuple[Any, ...]:
        return (_baseline, (self.seen, self.subtree, self.assets))


def _baseline(seen: int, subtree: Series, assets: dict[str, Series]) -> Baseline:
    b = Baseline()
    b.seen, b.subtree, b.assets = seen, subtree, assets
    return b


class Activity:
    """What one transaction did to each address: the largest call tree under a call into it, and its
    net outflow of each asset it sent; ``sender``: learned from but not scored (what a sender does
    with its own funds is its choice; wallet behaviour is :mod:`.wallets`')."""

    __slots__ = ("addresses", "outflows", "sender", "subtrees")

    def __init__(self, trace: Trace) -> None:
        self.sender = trace.sender
        subtrees: dict[str, int] = {}
        open_: list[tuple[int, int, str]] = []  # (depth, index, contract) of calls whose subtree is open
        end = 0
        for i, step in enumerate(trace.steps):
            depth = step.depth
            while open_ and open_[-1][0] >= depth:
                _, start, to = open_.pop()
                if i - start > subtrees.get(to, 0):
                    subtrees[to] = i - start
            if step.sel is not None:
                f = step.frame
                if f.to is not None and f.type != "DELEGATECALL":
                    open_.append((depth, i, f.to))
            end = i + 1
        for _, start, to in open_:
            if end - start > subtrees.get(to, 0):
                subtrees[to] = end - start
        net: dict[tuple[str, str], int] = {}
        for asset, src, dest, amount in trace.moves:
            key = ETH if asset is None else asset  # (a token's own contract minting or burning is no flow)
            if src is not None and src != asset:
                net[(src, key)] = net.get((src, key), 0) - amount
            if dest is not None and dest != asset:
                net[(dest, key)] = net.get((dest, key), 0) + amount
        outflows: dict[str, list[tuple[str, int]]] = {}
        for (holder, key), value in net.items():
            if value < 0:
                outflows.setdefault(holder, []).append((key, -value))
        self.subtrees = subtrees
        self.outflows = outflows
        self.addresses = subtrees.keys() | {holder for holder, _ in net}


def short(address: str) -> str:
    """
    >>> short("0x" + "ab" * 20), short("ETH")
    ('0xabab…abab', 'ETH')
    """
    return f"{address[:6]}…{address[-4:]}" if len(address) == 42 else address


class BaselineDetector:
    """Per-address behaviour baselines (see the module docstring)."""

    name = "baseline"
    calibrated = False  # evidence units, like the rule file's
    apart = True  # against each address's own normal: the rules' "familiar public service" does not offset it

    def __init__(self, min_history: int = 10, min_outflows: int = 5, max_addresses: int = 50_000) -> None:
        self.min_history = min_history
        self.min_outflows = min_outflows
        self.max_addresses = max_addresses
        self._baselines: OrderedDict[str, Baseline] = OrderedDict()
        self._batch: tuple[Batch, list[Activity | None]] | None = None

    @property
    def warm(self) -> bool:
        return True  # per address: one it has not learned gives no score

    def _activities(self, batch: Batch) -> list[Activity | None]:
        cached = self._batch
        if cached is not None and cached[0] is batch:
            return cached[1]
        out: list[Activity | None] = [None] * batch.size
        traces = batch.traces
        for i, tx in enumerate(batch.txs):
            trace = traces[i] if traces is not None else None
            if trace is None:
                if tx is None or tx.trace is None:
                    continue
                trace = walk(tx, tx.trace)
            out[i] = Activity(trace)
        self._batch = (batch, out)
        return out

    def score_many(self, batch: Batch) -> list[Score | None]:
        out: list[Score | None] = [None] * batch.size
        if not self._baselines:
            return out
        for i, activity in enumerate(self._activities(batch)):
            if activity is not None:
                out[i] = self._score(activity)
        return out

    def _score(self, activity: Activity) -> Score | None:
        best: list[Contribution] | None = None
        best_total = 0.0
        baselines = self._baselines
        sender = activity.sender
        for address in activity.addresses:
            base = dict_get(baselines, address)
            if base is None or base.seen < self.min_history or address == sender:
                continue
            terms = self._terms(address, base, activity)
            total = sum(c.contribution for c in terms)
            if best is None or total > best_total:
                best, best_total = terms, total
        if best is None:
            return None
        best.sort(key=lambda c: -c.contribution)
        return Score(best_total, [c for c in best if c.contribution > 0])

    def _terms(self, address: str, base: Baseline, activity: Activity) -> list[Contribution]:
        terms: list[Contribution] = []
        size = activity.subtrees.get(address)
        if size is not None and base.subtree.n >= self.min_history:
            ratio = size / max(base.subtree.p99(), 1)
            terms.append(Contribution("subtree_vs_p99", round(ratio, 2), _evidence(ratio, 1.0, 6.0),
                                      f"call tree under {short(address)}: {ratio:.0f}x its 99th percentile "
                                      f"(n={base.subtree.n})"))
        top: tuple[float, str, int] | None = None  # the asset sent furthest above its own 99th percentile
        for asset, amount in activity.outflows.get(address, ()):
            past = base.assets.get(asset)
            if past is not None and past.n >= self.min_outflows:
                ratio = amount / max(past.p99(), 1)
                if top is None or ratio > top[0]:
                    top = (ratio, asset, past.n)
        if top is not None:
            ratio, asset, n = top
            terms.append(Contribution("outflow_vs_p99", round(ratio, 2), _evidence(ratio, 2.0, 8.0),
                                      f"{short(asset)} out of {short(address)}: {ratio:.0f}x its 99th "
                                      f"percentile (n={n})"))
        return terms

    def learn_many(self, batch: Batch, rows: Sequence[int]) -> None:
        activities = self._activities(batch)
        for i in rows:
            activity = activities[i]
            if activity is not None:
                self._learn(activity)
        self._batch = None

    def _learn(self, activity: Activity) -> None:
        subtrees, outflows = activity.subtrees, activity.outflows
        for address in activity.addresses:
            base = self._get(address)
            base.seen += 1
            size = subtrees.get(address)
            if size is not None:
                base.subtree.add(size)
            for asset, amount in outflows.get(address, ()):
                assets = base.assets
                past = assets.get(asset)
                if past is None:
                    if len(assets) >= MAX_ASSETS:
                        continue
                    past = assets[asset] = Series()
                past.add(amount)

    def _get(self, address: str) -> Baseline:
        baselines = self._baselines
        base = dict_get(baselines, address)
        if base is None:
            base = baselines[address] = Baseline()
            if len(baselines) > self.max_addresses:
                baselines.popitem(last=False)
        else:
            move_to_end(baselines, address)
        return base

    def explain(self, x: Features) -> list[Contribution]:
        return []  # explained per transaction, from its activity, in score_many

    def state(self) -> dict[str, Any]:
        return {"baselines": self._baselines}

    def load_state(self, state: dict[str, Any]) -> None:
        self._baselines = state["baselines"]
        self._batch = None


def _evidence(ratio: float, free_bits: float, cap: float) -> float:
    """Two evidence units per doubling of ``ratio`` past ``2**free_bits``, at most ``cap``.

    >>> _evidence(16.0, 2.0, 8.0), _evidence(3.0, 2.0, 8.0), _evidence(1e9, 2.0, 8.0)
    (4.0, 0.0, 8.0)
    """
    if ratio <= 1.0:
        return 0.0
    return min(cap, max(0.0, 2.0 * (math.log2(ratio) - free_bits)))

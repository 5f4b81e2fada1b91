"""The detector protocol, the batch detectors score, and the values they return.

A detector scores a block's transactions at once (:class:`Batch`: each transaction and its
features): ``score_many`` returns one :class:`Score` per transaction, or ``None`` where the
detector has nothing to say (a tree model on a transaction without a call tree, or any detector
still warming up: a cold detector is neither "normal" nor "anomalous", just absent). A raw score
is on the detector's own scale, higher meaning more anomalous: fusion calibrates it against the
detector's recent history (``calibrated = True``) or adds it as evidence units as it is
(``calibrated = False``). ``learn_many`` learns the transactions the finding policy lets the
models learn from (never the ones that made a finding: anomalies must not become normal).

Scoring is kept apart from deciding: thresholds, rule corroboration, severity and the allowlist
live in :mod:`.policy`. Constructors take hyperparameters only, stored under the same names;
learned state lives in other attributes; ``state()`` / ``load_state()`` round-trip it for
snapshots. :mod:`.registry` lists the detectors the engine builds; the contract every one of them
keeps is tested by ``tests/test_detector_contract.py``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import msgspec

Features = Mapping[str, float]

# The LRU maps (OrderedDicts) read through the types' own methods: the same results as the bound
# methods, without a method lookup on each call (the hot path makes ~10 a transaction).
dict_get = dict.get
move_to_end = OrderedDict.move_to_end


class Contribution(msgspec.Struct, frozen=True, gc=False):
    """One feature's part in a score: its value and how much it added.

    A msgspec Struct, not a dataclass: every transaction builds several, and a Struct is built in
    C (~0.1 us against ~0.3 us for a slotted dataclass, 0.6 us for a frozen one).
    """

    feature: str
    value: float
    contribution: float
    why: str = ""


class Score(msgspec.Struct, gc=False):
    """One detector's verdict on one transaction: its raw score, the features that drove it
    (largest contribution first), and the named rules that hold (the rule detector's)."""

    raw: float
    explanation: list[Contribution] = []
    rules: list[Any] = []


class Batch:
    """The transactions a detector scores at once (a block, or pending transactions), with their
    features; ``traced``: the indexes of those with a call tree of more than one frame (what the
    tree models read), computed here unless the caller has them; ``traces``: each transaction's
    walked call tree (:class:`~.traversal.Trace`, or None), when the caller has them."""

    __slots__ = ("features", "now", "size", "traced", "traces", "txs")

    def __init__(self, txs: Sequence[Any], features: Sequence[dict[str, float]], now: float = 0.0,
                 traced: list[int] | None = None, traces: Sequence[Any] | None = None) -> None:
        self.txs = txs
        self.features = features
        self.traces = traces
        self.now = now
        self.size = len(features)
        self.traced = [i for i, f in enumerate(features) if f.get("frames", 0.0) > 1] if traced is None else traced


@runtime_checkable
class Detector(Protocol):
    name: str
    calibrated: bool  # True: fusion calibrates the raw score; False: it is evidence units already

    @property
    def warm(self) -> bool: ...

    def score_many(self, batch: Batch) -> Sequence[Score | None]: ...

    def learn_many(self, batch: Batch, rows: Sequence[int]) -> None: ...

    def explain(self, x: Features) -> list[Contribution]: ...

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class Finding:
    """A detector's verdict after one transaction, before the alert stage turns it into an alert:
    about the transaction, or, with ``subject``, about that address (a wallet) as seen after it."""

    tx_hash: str
    block_number: int | None
    block_hash: str | None
    stage: str  # "block" or "mempool"
    score: float
    severity: str
    type: str
    detector: str
    title: str
    description: str
    addresses: list[str]
    explanation: list[Contribution] = field(default_factory=list)
    subject: str | None = None  # what the finding is about when not its transaction
    matches: list[Any] = field(default_factory=list)  # a monitor's: what matched (monitors.Match)
    # findings this one links to, as (tx_hash, detector, subject): the deployment an exploit ran through
    related: list[tuple[str, str, str]] = field(default_factory=list)

"""When wallet behaviour raises an alert: a finding about the wallet, apart from any transaction's.

A wallet (an address the stream has not seen called as a contract) whose behaviour score
(:mod:`.wallets`) reaches ``threshold`` after one of its transactions makes a ``scam`` finding
about it: the address is the finding's subject, its explanation the behaviour (fan-in of small
payments, forwarding, emptied, a short busy life). Its alert names no transaction (the one after
which the wallet crossed the threshold is in the description), so transaction metrics leave it
out. Once per wallet per ``cooldown`` seconds of chain time (the lifecycle folds what follows into
it as well).

The behaviour reads "busy within a short period" against how long the stream has watched: in a
stream that started an hour ago every busy account is busy within a short period. So no wallet
finding is made before the stream has seen ``min_watch`` seconds of chain time (7 days by
default): a service started from a snapshot of a longer history alerts at once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ingest.events import Block, Tx

from .base import Finding
from .fusion import round6
from .wallets import WalletBehaviour

DETECTOR = "wallet"


class WalletAlerts:
    """See the module docstring."""

    def __init__(self, threshold: float = 0.475, min_watch: float = 7 * 86400, cooldown: float = 7 * 86400,
                 max_wallets: int = 200_000) -> None:
        self.threshold = threshold
        self.min_watch = min_watch
        self.cooldown = cooldown
        self.max_wallets = max_wallets
        self.first_seen: float | None = None  # the chain time the stream started at
        self._alerted: OrderedDict[str, float] = OrderedDict()  # wallet -> when its last finding was made

    def watch(self, now: float) -> None:
        """The stream reached chain time ``now``."""
        if now and (self.first_seen is None or now < self.first_seen):
            self.first_seen = now

    def check(self, address: str, score: float, tx: Tx, now: float, wallets: WalletBehaviour,
              is_contract: bool, block: Block | None) -> Finding | None:
        """The finding ``address`` makes with behaviour ``score`` after ``tx``, if any."""
        if score < self.threshold or is_contract or self.first_seen is None or now - self.first_seen < self.min_watch:
            return None
        last = self._alerted.get(address)
        if last is not None and now - last < self.cooldown:
            return None
        self._alerted[address] = now
        self._alerted.move_to_end(address)
        if len(self._alerted) > self.max_wallets:
            self._alerted.popitem(last=False)
        explanation = wallets.explain(address)
        reasons = "; ".join(c.why for c in explanation[:3]) or "its behaviour"
        title = "Wallet behaves like a scam collection account"
        return Finding(
            tx_hash=tx.hash, block_number=block.number if block else tx.block_number,
            block_hash=block.hash if block else None, stage="block", score=round6(score),
            severity="high" if score >= 0.6 else "medium", type="scam", detector=DETECTOR, title=title,
            description=f"{title} ({address}): {reasons}; after transaction {tx.hash}.", addresses=[address],
            explanation=explanation, subject=address,
        )

    def state(self) -> dict[str, Any]:
        return {"first_seen": self.first_seen, "alerted": self._alerted}

    def load_state(self, state: dict[str, Any]) -> None:
        self.first_seen = state["first_seen"]
        self._alerted = state["alerted"]

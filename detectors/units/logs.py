"""Features of the receipt's logs: token transfers, unlimited approvals, ownership and upgrades."""

from __future__ import annotations

from typing import Any

from ingest.events import Tx

from ..selectors import MAX_UINT_WORD, TOPIC_ADMIN, TOPIC_APPROVAL, TOPIC_OWNERSHIP, TOPIC_TRANSFER, TOPIC_UPGRADED
from .base import TxUnit


class Logs(TxUnit):
    """``logs``: events emitted; ``transfer_events``: ERC-20/721 Transfer events;
    ``unlimited_approvals``: Approval events for the maximum amount; ``ownership_events``:
    OwnershipTransferred; ``upgrade_events``: a proxy's Upgraded or AdminChanged. Left out when the
    transaction emitted nothing (zero counts carry no evidence, and no model reads them)."""

    names = ("logs", "transfer_events", "unlimited_approvals", "ownership_events", "upgrade_events")

    def compute(self, tx: Tx, block: Any, out: dict[str, float]) -> None:
        receipt = tx.receipt
        if receipt is None or not receipt.logs:
            return
        transfers = unlimited = ownership = upgrades = 0
        for lg in receipt.logs:
            if not lg.topics:
                continue
            t0 = lg.topics[0]
            if t0 == TOPIC_TRANSFER:
                transfers += 1
            elif t0 == TOPIC_APPROVAL:
                if lg.data[-64:] == MAX_UINT_WORD:
                    unlimited += 1
            elif t0 == TOPIC_OWNERSHIP:
                ownership += 1
            elif t0 in (TOPIC_UPGRADED, TOPIC_ADMIN):
                upgrades += 1
        out["logs"] = float(len(receipt.logs))
        out["transfer_events"] = float(transfers)
        out["unlimited_approvals"] = float(unlimited)
        out["ownership_events"] = float(ownership)
        out["upgrade_events"] = float(upgrades)

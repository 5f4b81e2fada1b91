"""Re-entry: a contract called again while its earlier call is still on the stack."""

from __future__ import annotations

from collections.abc import Sequence

from ..selectors import NOT_REENTRY
from ..traversal import Step, Trace
from .base import TraceUnit


class Reentry(TraceUnit):
    """``reentries``: function calls into a third-party contract still on the stack. A bare ETH send
    back to the caller (WETH.withdraw paying a bot), a callback into the transaction's own contract
    (flash-swap callbacks into the bot), a contract calling its own functions (``this.f()``) and a
    token re-entered for a token function (fee-on-transfer tokens) are how ordinary contracts work."""

    names = ("reentries",)

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        n = 0
        mine = (trace.root_to, trace.sender)
        for step in trace.calls:  # function CALLs below the root
            to = step.frame.to
            if to in step.path and to not in mine and to != step.frame.sender and step.sel not in NOT_REENTRY:
                n += 1
        out["reentries"] = float(n)


class ReentrantPriceReads(TraceUnit):
    """``oracle_reads``: price reads (``ORACLE_SELECTORS``); ``reentrant_price_reads``: those of a
    contract whose own call is still on the stack, by a third party: read-only re-entrancy (a
    pool's virtual price read while it is mid-withdrawal)."""

    names = ("oracle_reads", "reentrant_price_reads")
    kinds = frozenset({"oracle"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        stale = sum(1 for s in steps if s.frame.to in s.path and s.frame.to != s.frame.sender)
        out["oracle_reads"] = float(len(steps))
        out["reentrant_price_reads"] = float(stale)

"""Calls of protocol functions whose use inside one transaction is the shape of an attack: flash
loans, lending and liquidations, governance, swap and flash-loan callbacks, pair reserves."""

from __future__ import annotations

from collections.abc import Sequence

from ..selectors import CALLBACK_PROVIDERS, GOVERNANCE_EXEC_SELECTORS, LENDING_SELECTORS, ZERO_WORD
from ..traversal import Step, Trace
from .base import TraceUnit


class FlashLoans(TraceUnit):
    """``flash_calls``: flash-loan entry points of the common lenders, and Uniswap v2 swaps with
    callback data (flash swaps)."""

    names = ("flash_calls",)
    kinds = frozenset({"flash_loan", "v2_swap"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        n = 0
        for step in steps:
            inp = step.frame.input
            if step.kind == "flash_loan" or (len(inp) > 330 and inp[266:330] != ZERO_WORD):
                n += 1
        out["flash_calls"] = float(n)


class Lending(TraceUnit):
    """``lending_calls``: lending-market actions (Compound-style, Aave, Euler, Morpho);
    ``liquidation_calls``: calls of the large lending protocols' public liquidation entry points (a
    liquidation has the shape of a price manipulation and is the commonest ordinary one)."""

    names = ("lending_calls", "liquidation_calls")
    kinds = frozenset({"lending", "liquidation"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        lending = liquidations = 0
        for step in steps:
            if step.kind == "lending":
                lending += 1
                continue
            if step.frame.type == "CALL":  # (a proxy's delegatecall repeats it)
                liquidations += 1
            if step.sel in LENDING_SELECTORS:
                lending += 1
        out["lending_calls"] = float(lending)
        out["liquidation_calls"] = float(liquidations)


class Governance(TraceUnit):
    """``governance_calls``: votes, proposals, their execution and delegation; ``vote_and_execute``:
    a vote (or a proposal, or voting power taken) and a decision executed in one transaction:
    governance without its delay (a takeover by votes, often with flash-loaned voting power)."""

    names = ("governance_calls", "vote_and_execute")
    kinds = frozenset({"governance"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        calls = [s for s in steps if s.frame.type == "CALL"]  # (a proxy's delegatecall repeats it)
        executed = sum(1 for s in calls if s.sel in GOVERNANCE_EXEC_SELECTORS)
        out["governance_calls"] = float(len(calls))
        out["vote_and_execute"] = 1.0 if executed and len(calls) > executed else 0.0


class ForgedCallbacks(TraceUnit):
    """``forged_callbacks``: swap and flash-loan callbacks called directly: by the sender itself, or
    neither by a pool or lender just called with a swap or a loan nor into a contract waiting on the
    stack for one (a contract's callback forged to make it pay)."""

    names = ("forged_callbacks",)
    kinds = frozenset({"callback"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        out["forged_callbacks"] = float(sum(
            1 for s in steps if s.frame.type == "CALL"
            and (s.depth == 0 or (s.frame.to not in s.path and s.caller_sel not in CALLBACK_PROVIDERS))))


class ReserveSyncs(TraceUnit):
    """``reserve_syncs``: Uniswap v2 pairs skimmed or synced (reserves re-read from balances moved
    under them: burnt from the pair, or donated to it)."""

    names = ("reserve_syncs",)
    kinds = frozenset({"reserve"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        out["reserve_syncs"] = float(sum(1 for s in steps if s.frame.type == "CALL"))

"""The originator's own contracts called by a victim: counterfeit tokens and handed-in addresses."""

from __future__ import annotations

from collections.abc import Sequence

from ..selectors import CALLBACK_PROVIDERS, CALLBACK_SELECTORS, TOKEN_FUNCTIONS
from ..traversal import Step, Trace
from .base import TraceUnit


class Counterfeits(TraceUnit):
    """When the transaction does not itself call a token function (a token's own business: fee
    tokens selling their fees have routers call them back):

    ``counterfeit_token_calls``: the originator's own contract called as a token
    (transfer/transferFrom/approve) by a third party: a counterfeit token fed to a victim that
    trusts whatever token address it is given; ``foreign_callins``: the originator's contract
    called by a third party with a function of its own (no token function, standard callback or
    hook; not a pool's or lender's callback, not from inside a token's transfer) whose address was
    an argument of the call that third party was making: a victim calling code whose address it was
    handed (a fake vault, market, pool or owner)."""

    names = ("counterfeit_token_calls", "foreign_callins")

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        counterfeit = callins = 0
        inp = trace.tx.input
        if len(inp) >= 10 and inp[:10] not in TOKEN_FUNCTIONS:
            sender, mine = trace.sender, trace.mine
            for step in trace.calls:  # function CALLs below the root
                f = step.frame
                to = f.to
                # ... on the originator's side, by someone outside it
                if to == sender or not mine(to, step) or mine(f.sender, step):
                    continue
                if step.kind == "token_move" or step.kind == "approve":
                    counterfeit += 1
                elif (step.sel not in CALLBACK_SELECTORS and step.sel not in TOKEN_FUNCTIONS
                      and step.caller_sel not in CALLBACK_PROVIDERS and step.caller_sel not in TOKEN_FUNCTIONS
                      and to is not None and to[2:] in step.caller_input):
                    callins += 1
        out["counterfeit_token_calls"] = float(counterfeit)
        out["foreign_callins"] = float(callins)

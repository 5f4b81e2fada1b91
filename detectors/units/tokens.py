"""Token features: transfers, balance reads and approvals, and whose tokens were pulled."""

from __future__ import annotations

from collections.abc import Sequence

from ..selectors import ZERO_WORD
from ..traversal import Step, Trace
from .base import TraceUnit


class TokenActivity(TraceUnit):
    """``token_moves``: transfer/transferFrom calls; ``tokens_touched``: distinct tokens moved or
    read; ``balance_checks``: balanceOf reads (price and reserve probing); ``approvals``."""

    names = ("token_moves", "tokens_touched", "balance_checks", "approvals")
    kinds = frozenset({"token_move", "balance_of", "approve"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        moves = balances = approvals = 0
        tokens: set[str | None] = set()
        for step in steps:
            if step.kind == "approve":
                approvals += 1
                continue
            if step.kind == "token_move":
                moves += 1
            else:
                balances += 1
            tokens.add(step.frame.to)
        out["token_moves"] = float(moves)
        out["tokens_touched"] = float(len(tokens))
        out["balance_checks"] = float(balances)
        out["approvals"] = float(approvals)


class ThirdPartyPulls(TraceUnit):
    """``third_party_pulls``: transferFrom of a holder who is neither the originator's side nor the
    caller; ``drained_holders``: such holders whose whole balance, as just read with balanceOf, was
    pulled (a drainer); ``injected_pulls``: pulls made by a contract, to someone else, with the whole
    transferFrom call written word for word in the transaction's input (an arbitrary-call flaw: a
    router executing whatever call it is handed, with the approvals users gave it)."""

    names = ("third_party_pulls", "drained_holders", "injected_pulls")
    kinds = frozenset({"token_move", "balance_of"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        pulls = injected = 0
        drained: set[str | None] = set()
        read: dict[tuple[str | None, str | None], str] = {}  # (token, holder) -> balanceOf output just read
        for step in steps:
            f, inp = step.frame, step.frame.input
            if step.kind == "balance_of":
                if f.output is not None and len(inp) >= 74:
                    read[(f.to, "0x" + inp[34:74])] = f.output
                continue
            if step.amount is None or step.transfer is None:
                continue  # not a call that went through
            src, dest, amount = step.transfer
            if trace.mine(src, step) or src == f.sender or src == dest:
                continue
            pulls += 1
            # the selector and its three words (a router may append data of its own); a contract
            # pulling for itself, as a Safe collecting a payment, is not an injected call
            if step.depth > 0 and dest != f.sender and inp[2:202] in trace.root.input:
                injected += 1
            balance = read.get((f.to, src))
            if balance is not None and balance[2:].lstrip("0") == amount.lstrip("0") and balance[2:].strip("0"):
                drained.add(src)
        out["third_party_pulls"] = float(pulls)
        out["drained_holders"] = float(len(drained))
        out["injected_pulls"] = float(injected)


class UnpaidPulls(TraceUnit):
    """``unpaid_pulls``: third parties whose tokens a contract outside the originator's side pulled
    (transferFrom, with the approvals they gave that contract) to someone other than itself, and who
    received nothing (no token, ETH or NFT) in the transaction: a contract made to spend its users'
    approvals for someone else. A swap, an order fill or an accepted bid pays the holder; a contract
    pulling to itself is a deposit, paid in shares minted out of sight."""

    names = ("unpaid_pulls",)
    kinds = frozenset({"token_move", "nft_transfer"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        pulled: set[str | None] = set()
        nft_to: list[str] = []
        mine = trace.mine
        for step in steps:
            f, inp = step.frame, step.frame.input
            if step.kind == "nft_transfer":
                if step.ok and len(inp) >= 138:
                    nft_to.append("0x" + inp[98:138])
                continue
            if not step.amount or step.transfer is None:
                continue
            src, dest, _ = step.transfer
            if (not mine(src, step) and src != f.sender and src != dest and not mine(f.sender, step)
                    and dest != f.sender):
                pulled.add(src)
        if pulled:  # ... and who received nothing at all in the transaction
            pulled.difference_update([dest for _, _, dest, amount in trace.moves if amount])
            pulled.difference_update(nft_to)
        out["unpaid_pulls"] = float(len(pulled))


class BorrowRepay(TraceUnit):
    """``borrow_repay``: tokens that came to the originator from a party and went back to it in the
    same transaction (flash-loan shaped)."""

    names = ("borrow_repay",)
    kinds = frozenset({"token_move"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        n = 0
        received: dict[tuple[str | None, str | None], int] = {}  # (token, counterparty) -> times tokens came in
        me = (trace.root_to, trace.sender)
        for step in steps:
            if step.transfer is None:
                continue
            src, dest, _ = step.transfer
            token = step.frame.to
            if dest in me:
                received[(token, src)] = received.get((token, src), 0) + 1
            elif src in me and received.get((token, dest)):
                n += 1  # the same token went back to whom it came from
        out["borrow_repay"] = float(n)


class GrantedApprovals(TraceUnit):
    """``granted_approvals``: allowances granted to the originator's side (approve with a nonzero
    amount) by a contract outside it: a contract made to approve its holdings to whoever asks."""

    names = ("granted_approvals",)
    kinds = frozenset({"approve"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        n = 0
        mine = trace.mine
        for step in steps:
            f, inp = step.frame, step.frame.input
            if (step.ok and not mine(f.sender, step) and len(inp) >= 138 and mine("0x" + inp[34:74], step)
                    and inp[74:138] != ZERO_WORD):
                n += 1
        out["granted_approvals"] = float(n)


class ThirdPartyAllowances(TraceUnit):
    """``third_party_allowances``: allowances that third parties granted, read (allowance(owner,
    spender) of an owner outside the originator's side): looking for approvals to pull."""

    names = ("third_party_allowances",)
    kinds = frozenset({"allowance"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        n = 0
        for step in steps:
            inp = step.frame.input
            if len(inp) >= 74:
                owner = "0x" + inp[34:74]
                if not trace.mine(owner, step) and owner != step.frame.sender:
                    n += 1
        out["third_party_allowances"] = float(n)

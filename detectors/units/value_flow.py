"""The originator's value flow: what it ended with more or less of, and share-price donations."""

from __future__ import annotations

from collections.abc import Sequence

from ..selectors import TRANSFER
from ..traversal import Step, Trace
from .base import TraceUnit


class ValueFlow(TraceUnit):
    """Of the originator's side (the sender, the contract it called, contracts created in the
    transaction): ``assets_gained``: assets it ended with more of (by at least half of what came in);
    ``assets_lost``: assets it ended with less of; ``free_gain``: the gained ones when none was given
    up (value taken, not traded). ETH, tokens moved by transfer/transferFrom, wrapped and unwrapped."""

    names = ("assets_gained", "assets_lost", "free_gain")
    # reads the walk's value moves, not its steps (kinds None: called for every tree)

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        gained, lost = value_flow(trace.moves, trace.mine_at_end()) if trace.moves else (0, 0)
        out["assets_gained"] = float(gained)
        out["assets_lost"] = float(lost)
        out["free_gain"] = float(gained) if gained and not lost else 0.0


def value_flow(moves: list[tuple[str | None, str | None, str | None, int]], me: set[str | None]) -> tuple[int, int]:
    """(assets gained, assets lost) by ``me`` over ``moves`` (asset, from, to, amount); ETH is None.

    An asset is gained when what came in exceeds what went out by at least half of what came in (an
    arbitrage keeps a sliver of what it turned over; a drain keeps most of it), lost when more went
    out than came in.

    >>> me = {"0xa"}
    >>> value_flow([("0xt", "0xv", "0xa", 100)], me)
    (1, 0)
    >>> value_flow([("0xt", "0xa", "0xp", 100), ("0xt", "0xp", "0xa", 101)], me)  # arbitrage
    (0, 0)
    >>> value_flow([("0xt", "0xa", "0xp", 9), ("0xu", "0xp", "0xa", 5)], me)  # a swap
    (1, 1)
    """
    flow: dict[str | None, list[int]] = {}
    for asset, src, dest, amount in moves:
        if not amount or (src in me) == (dest in me):
            continue
        io = flow.get(asset)
        if io is None:
            io = flow[asset] = [0, 0]
        io[0 if dest in me else 1] += amount
    gained = lost = 0
    for came, went in flow.values():
        if came - went >= came / 2 and came > went:
            gained += 1
        elif went > came:
            lost += 1
    return gained, lost


class VaultDonations(TraceUnit):
    """``vault_donations``: lending markets and share vaults that the originator's contracts both
    entered or left (mint, redeem, deposit, withdraw, borrow) and sent tokens to outright with
    transfer: a donation inflating the price of a share (empty-market and vault-inflation attacks)."""

    names = ("vault_donations",)
    kinds = frozenset({"token_move", "lending", "vault"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        sent: set[str] = set()
        entered: set[str | None] = set()
        for step in steps:
            f = step.frame
            if not step.ok or not trace.mine(f.sender, step):
                continue
            if step.kind != "token_move":
                entered.add(f.to)
            elif step.sel == TRANSFER and step.transfer is not None:
                sent.add(step.transfer[1])
        out["vault_donations"] = float(len(sent.intersection(entered))) if sent and entered else 0.0

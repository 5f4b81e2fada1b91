"""One walk of a transaction's call tree, shared by every trace feature unit.

:func:`walk` visits the frames in call order (depth first, iteratively: a 10,000-deep tree is no
recursion) and records, for each, a :class:`Step`: the frame, its depth, the contracts waiting on
the stack above it, the selector and input of the call its caller was given (through a proxy's or
library's delegatecall: the call into the contract whose context it runs in), its own selector and
that selector's kind (:mod:`.selectors`). The :class:`Trace` holds the steps and what several
units need: the originator's side (the sender, the contract it called, and contracts created in
the transaction, each from the step that created it), the value moved (ETH sent, tokens moved
with transfer/transferFrom, wrapped and unwrapped), the block's producer, the steps of each kind,
and the function calls below the root (what re-entry and call-in units read).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ingest.events import CallFrame, Tx

from .selectors import KIND_OF, PRECOMPILES, TRANSFER

_NEVER = 1 << 62  # a step index no step reaches


class Step(msgspec.Struct, gc=False):
    """One frame of the walk (see the module docstring). ``ok``: a CALL that did not fail;
    ``transfer``: for a token move, (from, to, amount as 64 hex digits); ``amount``: that amount as
    an integer when the call went through (else None). A msgspec Struct: one is built per frame, in C."""

    frame: CallFrame
    index: int
    depth: int
    path: tuple[str | None, ...]  # the contracts waiting on the stack (the sender first)
    caller_sel: str | None
    caller_input: str
    sel: str | None
    kind: str | None
    ok: bool
    transfer: tuple[str | None, str, str] | None = None
    amount: int | None = None


class Trace(msgspec.Struct, gc=False):
    """The walked call tree of one transaction (see the module docstring). A msgspec Struct: one is
    built per traced transaction, in C."""

    tx: Tx
    root: CallFrame
    sender: str | None
    root_to: str | None
    producer: str | None
    entities: Any = None  # the engine's entity view (.entities.EntityView), when scoring in a stream
    steps: list[Step] = msgspec.field(default_factory=list)
    calls: list[Step] = msgspec.field(default_factory=list)  # function CALLs below the root, in call order
    by_kind: dict[str, list[Step]] = msgspec.field(default_factory=dict)  # each kind's steps, in call order
    # contracts created in the transaction -> the step creating them (the originator's, from then on)
    created_at: dict[str | None, int] = msgspec.field(default_factory=dict)
    # (asset, from, to, amount): ETH (asset None) sent, tokens moved, wrapped and unwrapped
    moves: list[tuple[str | None, str | None, str | None, int]] = msgspec.field(default_factory=list)

    def of_kinds(self, kinds: frozenset[str] | None) -> list[Step]:
        """The steps of the given selector kinds, in call order (``None``: every step)."""
        if kinds is None:
            return self.steps
        by_kind = self.by_kind
        present = [k for k in kinds if k in by_kind]
        if not present:
            return []
        if len(present) == 1:
            return by_kind[present[0]]
        return [s for s in self.steps if s.kind in kinds]

    def created(self, address: str | None, step: Step) -> bool:
        """Whether ``address`` was created in this transaction by the time of ``step``."""
        return self.created_at.get(address, _NEVER) <= step.index

    def mine(self, address: str | None, step: Step) -> bool:
        """Whether ``address`` is on the originator's side at ``step``: the sender, the contract it
        called, or a contract created in the transaction by then."""
        return address == self.sender or address == self.root_to or self.created_at.get(address, _NEVER) <= step.index

    def mine_at_end(self) -> set[str | None]:
        """The originator's side once the whole transaction ran."""
        return {self.sender, self.root_to, *self.created_at}


def walk(tx: Tx, root: CallFrame, producer: str | None = None, entities: Any = None) -> Trace:
    """The :class:`Trace` of ``tx``'s call tree ``root``."""
    trace = Trace(tx, root, tx.sender, root.to, producer, entities)
    steps, nested, moves, created_at, by_kind = trace.steps, trace.calls, trace.moves, trace.created_at, trace.by_kind
    stack: list[tuple[CallFrame, int, tuple[str | None, ...], str | None, str]] = [
        (root, 0, (tx.sender,), None, "")]
    while stack:
        f, d, path, caller_sel, caller_input = stack.pop()
        kind = f.type
        to = f.to
        inp = f.input
        sel = None if len(inp) < 10 or to in PRECOMPILES else inp[:10]  # a precompile's input is data
        of = KIND_OF.get(sel) if sel is not None else None
        index = len(steps)
        ok = kind == "CALL" and f.error is None
        step = Step(f, index, d, path, caller_sel, caller_input, sel, of, ok)
        steps.append(step)
        if d and sel is not None and kind == "CALL":
            nested.append(step)
        created = kind == "CREATE" or kind == "CREATE2"
        if created and to not in created_at:
            created_at[to] = index
        v = f.value
        if v and (ok or (created and f.error is None)):
            moves.append((None, f.sender, to, v))
        if of is not None:
            same = by_kind.get(of)
            if same is None:
                by_kind[of] = [step]
            else:
                same.append(step)
            if of == "token_move" or of == "wrap" or of == "unwrap":
                _value_moved(step, moves)
        calls = f.calls
        if calls:
            d += 1
            if kind != "DELEGATECALL":
                path, caller_sel, caller_input = (*path, to), sel, inp
            # (code run by delegatecall runs in its caller's context: its calls are the caller's, made
            # in the call that caller was given)
            for c in reversed(calls):
                stack.append((c, d, path, caller_sel, caller_input))
    return trace


def _value_moved(step: Step, moves: list[tuple[str | None, str | None, str | None, int]]) -> None:
    """Tokens moved by a transfer or transferFrom, wrapped or unwrapped, at ``step``."""
    f, inp, kind = step.frame, step.frame.input, step.kind
    if kind == "token_move":
        # transfer(to, amount): tokens leave f.sender; transferFrom(from, to, amount)
        if step.sel == TRANSFER:
            src, dest, amount = f.sender, "0x" + inp[34:74], inp[74:138]
        else:
            src, dest, amount = "0x" + inp[34:74], "0x" + inp[98:138], inp[138:202]
        step.transfer = (src, dest, amount)
        if step.ok and len(amount) == 64:  # a call that went through (a proxy's delegatecall repeats it)
            try:
                step.amount = int(amount, 16)
            except ValueError:
                step.amount = 0
            else:
                moves.append((f.to, src, dest, step.amount))
    elif kind == "wrap":
        if step.ok and f.value:
            moves.append((f.to, f.to, f.sender, f.value))  # wrapped tokens minted for the ETH sent
    elif step.ok and len(inp) >= 74:  # unwrap
        try:  # noqa: SIM105
            moves.append((f.to, f.sender, f.to, int(inp[10:74], 16)))  # wrapped tokens burnt for ETH
        except ValueError:
            pass

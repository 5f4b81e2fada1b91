"""Features of the call tree's size and make-up: how much a single call sets in motion."""

from __future__ import annotations

from collections.abc import Sequence

from ..selectors import PUBLIC_NOARG_SELECTORS, WEI
from ..traversal import Step, Trace
from .base import TraceUnit


class TreeSize(TraceUnit):
    """``frames``: calls made (the root included); ``depth``: the deepest; ``contracts``: distinct
    callees; ``delegatecalls``, ``staticcalls``; ``failed_frames``: calls that reverted;
    ``max_repeat``: the most times one function of one contract was called."""

    names = ("frames", "depth", "contracts", "delegatecalls", "staticcalls", "failed_frames", "max_repeat")

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        depth = delegate = static = failed = 0
        contracts: set[str | None] = set()
        repeats: dict[tuple[str | None, str], int] = {}
        for step in steps:
            f = step.frame
            if step.depth > depth:
                depth = step.depth
            to = f.to
            contracts.add(to)
            kind = f.type
            if kind != "CALL":
                if kind == "DELEGATECALL":
                    delegate += 1
                elif kind == "STATICCALL":
                    static += 1
            if f.error is not None:
                failed += 1
            if step.sel is not None:
                key = (to, step.sel)
                repeats[key] = repeats.get(key, 0) + 1
        out["frames"] = float(len(steps))
        out["depth"] = float(depth)
        out["contracts"] = float(len(contracts))
        out["delegatecalls"] = float(delegate)
        out["staticcalls"] = float(static)
        out["failed_frames"] = float(failed)
        out["max_repeat"] = float(max(repeats.values(), default=0))


class Creations(TraceUnit):
    """``creates``: contracts created; ``selfdestructs``: contracts destroyed holding funds (gas
    tokens self-destruct empty by the dozen); ``calls_into_created``: calls into contracts created in
    the same transaction (an attack deployed and run at once)."""

    names = ("creates", "selfdestructs", "calls_into_created")

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        creates = selfdestructs = into_created = 0
        for step in steps:
            kind = step.frame.type
            if kind == "CREATE" or kind == "CREATE2":
                creates += 1
                continue
            if kind == "SELFDESTRUCT" and step.frame.value:
                selfdestructs += 1
            if step.depth > 0 and trace.created_at and trace.created(step.frame.to, step):
                into_created += 1
        out["creates"] = float(creates)
        out["selfdestructs"] = float(selfdestructs)
        out["calls_into_created"] = float(into_created)


class EthFlows(TraceUnit):
    """``value_calls``: calls carrying ETH; ``eth_to_sender``: ETH sent back to the sender from inside
    the tree; ``pays_block_producer``: calls paying the block's producer (the bribe of an MEV bundle;
    known for mined blocks only)."""

    names = ("value_calls", "eth_to_sender", "pays_block_producer")

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        calls = paid = to_sender = 0
        for step in steps:
            f = step.frame
            if not f.value:
                continue
            calls += 1
            if f.to == trace.producer and f.error is None:
                paid += 1
            if f.to == trace.sender and step.depth > 0:
                to_sender += f.value
        out["value_calls"] = float(calls)
        out["eth_to_sender"] = to_sender / WEI
        if trace.producer is not None and calls:
            out["pays_block_producer"] = float(paid)


class BareCallTree(TraceUnit):
    """``bare_call_tree``: the frames set off by a call with no arguments (4 bytes of calldata): a
    contract pre-programmed to attack. A protocol's public routine (a harvest, a claim:
    ``PUBLIC_NOARG_SELECTORS``) is not."""

    names = ("bare_call_tree",)
    # reads the trace, not its steps (kinds None: called for every tree)

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        tx, frames = trace.tx, len(trace.steps)
        bare = (len(tx.input) - 2) // 2 == 4 and frames > 1 and tx.input[:10].lower() not in PUBLIC_NOARG_SELECTORS
        out["bare_call_tree"] = float(frames) if bare else 0.0

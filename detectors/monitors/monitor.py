"""One monitor, compiled from its :class:`~.spec.MonitorSpec`: ABIs resolved, expressions parsed
and checked against the names each match provides. :meth:`Monitor.match` returns what matched in
one transaction (:class:`Match` values), or nothing.

Calls are read from the call tree (every CALL, DELEGATECALL or CALLCODE into a watched address,
at any depth; without a trace, the top-level call), events from the receipt's logs (so at block
stage only), value flows from the call tree's ETH sends and token transfers (without a trace: the
top-level value and the ``Transfer`` logs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.events import CallFrame, Tx

from ..traversal import walk
from .abi import Abi, AbiError, Event, Function, load_abi
from .expr import EvalError, ExprError, Node, evaluate, names, parse
from .spec import MonitorSpec

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TX_FIELDS = {"tx", "score", "rules"}
_CALL_KINDS = frozenset({"CALL", "DELEGATECALL", "CALLCODE"})


class MonitorError(ValueError):
    """A monitor that cannot be loaded; the message names the monitor and the place."""


@dataclass(frozen=True, slots=True)
class Match:
    """What matched: ``kind`` ``call``, ``event``, ``outflow``, ``status``, ``anomaly`` or
    ``transaction``; ``name`` the function or event signature, or the asset; ``args`` the decoded
    arguments (integers beyond 2**53 as decimal strings, so every JSON reader keeps them exact)."""

    kind: str
    name: str
    address: str | None
    args: dict[str, Any] = field(default_factory=dict)


def _json_safe(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else str(value)
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return str(value)


class Monitor:
    def __init__(self, spec: MonitorSpec, base: Path | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.addresses = frozenset(spec.addresses)
        self.units = {sym: t.decimals for sym, t in spec.tokens.items()}
        try:
            abi = Abi()
            for ref in spec.abis:
                abi = abi.merge(load_abi(ref, base))
        except AbiError as err:
            raise MonitorError(f"monitor {spec.name!r}: {err}") from None
        self.functions: list[tuple[Function, Node | None]] = []
        self.events: list[tuple[Event, Node | None]] = []
        for i, f in enumerate(spec.functions):
            fn = self._ref(abi.function, f.function, f"functions[{i}]")
            self.functions.append((fn, self._cond(f.where, f"functions[{i}].where", {*fn.names, "call"})))
        for i, e in enumerate(spec.events):
            ev = self._ref(abi.event, e.event, f"events[{i}]")
            self.events.append((ev, self._cond(e.where, f"events[{i}].where", {*ev.names, "log"})))
        self.outflows: list[tuple[str | None, str, Node, int]] = []
        for i, o in enumerate(spec.outflows):
            asset = self._asset(o.asset, f"outflows[{i}].asset")
            cond = self._cond(o.where, f"outflows[{i}].where", {"amount", "window", "asset", "address"})
            assert cond is not None
            self.outflows.append((asset, o.asset, cond, o.window_blocks))
        self.where = self._cond(spec.where, "where", set())
        # (outflow index, address) -> (block number, amount) of recent blocks' outflows
        self._windows: dict[tuple[int, str], deque[tuple[int, int]]] = {}
        self._failed: deque[int] = deque()  # block numbers of recent failed transactions

    # -- loading ----------------------------------------------------------------------------

    def _ref(self, find: Any, ref: str, place: str) -> Any:
        try:
            return find(ref)
        except AbiError as err:
            raise MonitorError(f"monitor {self.name!r}, {place}: {err}") from None

    def _cond(self, source: str | None, place: str, provided: set[str]) -> Node | None:
        if source is None:
            return None
        try:
            node = parse(source, self.units)
        except ExprError as err:
            raise MonitorError(f"monitor {self.name!r}, {place}: {err}: {source}") from None
        unknown = names(node) - provided - TX_FIELDS
        if unknown:
            known = ", ".join(sorted(provided | TX_FIELDS))
            raise MonitorError(f"monitor {self.name!r}, {place}: unknown name {sorted(unknown)[0]!r} "
                               f"(here: {known}): {source}")
        return node

    def _asset(self, asset: str, place: str) -> str | None:
        if asset.upper() == "ETH":
            return None
        if asset in self.spec.tokens:
            return self.spec.tokens[asset].address
        if asset.startswith("0x") and len(asset) == 42:
            return asset.lower()
        raise MonitorError(f"monitor {self.name!r}, {place}: {asset!r} is not ETH, a token address, or a symbol "
                           f"in tokens ({', '.join(self.spec.tokens) or 'none given'})")

    # -- matching ---------------------------------------------------------------------------

    def touches(self, touched: set[str]) -> bool:
        return not self.addresses.isdisjoint(touched)

    def match(self, tx: Tx, stage: str, score: float | None, rules: list[str]) -> list[Match]:
        """What matched in ``tx`` (empty: the monitor does not fire). Raises :class:`EvalError`
        when a condition cannot be evaluated on this transaction's values."""
        spec = self.spec
        failed = _failed(tx)
        if (spec.status == "failed" and not failed) or (spec.status == "success" and failed is not False):
            return []
        env_tx = {"tx": _tx_env(tx, failed), "score": score if score is not None else 0.0, "rules": list(rules)}
        if self.where is not None and not evaluate(self.where, env_tx):
            return []
        found: list[Match] = []
        if self.functions:
            found += self._calls(tx, env_tx)
        if self.events and stage == "block":
            found += self._events(tx, env_tx)
        if self.outflows:
            found += self._outflows(tx, stage, env_tx)
        if spec.anomaly is not None:
            a = spec.anomaly
            held = [r for r in rules if r in a.rules]
            if held or (a.min_score is not None and score is not None and score >= a.min_score):
                found.append(Match("anomaly", ", ".join(held) or f"score {score:.3f}", tx.to,
                                   {"score": round(score or 0.0, 6), "rules": held}))
        if spec.failures is not None and failed and stage == "block":
            found += self._failure_spike(tx)
        if not (self.functions or self.events or self.outflows or spec.anomaly or spec.failures):
            kind = "status" if spec.status == "failed" else "transaction"
            found.append(Match(kind, "failed" if failed else "transaction", tx.to, {}))
        return found

    def _calls(self, tx: Tx, env_tx: dict[str, Any]) -> list[Match]:
        out = []
        for frame, depth in _frames(tx):
            if frame.to not in self.addresses or frame.type not in _CALL_KINDS:
                continue
            sel = frame.input[:10]
            for fn, cond in self.functions:
                if sel != fn.selector:
                    continue
                try:
                    args = fn.decode(frame.input)
                except AbiError:
                    continue  # calldata that is not this function's (a selector clash): not a match
                call = {"from": frame.sender, "to": frame.to, "value": frame.value or 0, "depth": depth,
                        "failed": frame.error is not None}
                if cond is None or evaluate(cond, {**env_tx, **args, "call": call}):
                    out.append(Match("call", fn.signature, frame.to,
                                     {k: _json_safe(v) for k, v in args.items()} | {"caller": frame.sender}))
        return out

    def _events(self, tx: Tx, env_tx: dict[str, Any]) -> list[Match]:
        out = []
        logs = tx.receipt.logs if tx.receipt is not None else ()
        for log in logs:
            if log.address not in self.addresses or not log.topics:
                continue
            for ev, cond in self.events:
                if log.topics[0] != ev.topic:
                    continue
                try:
                    args = ev.decode(log.topics, log.data)
                except AbiError:
                    continue
                if cond is None or evaluate(cond, {**env_tx, **args,
                                                        "log": {"address": log.address, "index": log.log_index}}):
                    out.append(Match("event", ev.signature, log.address, {k: _json_safe(v) for k, v in args.items()}))
        return out

    def _outflows(self, tx: Tx, stage: str, env_tx: dict[str, Any]) -> list[Match]:
        net = net_outflows(tx, self.addresses)
        out = []
        block = tx.block_number if tx.block_number is not None else -1
        for i, (asset, label, cond, window) in enumerate(self.outflows):
            for address in sorted(self.addresses):
                amount = net.get((address, asset), 0)
                recent = self._windows.get((i, address))
                earlier = sum(a for b, a in recent if b > block - window) if recent else 0
                total = earlier + max(amount, 0)
                if stage == "block" and amount > 0:
                    self._remember(i, address, block, amount, window)
                if total <= 0 and amount <= 0:
                    continue
                env = {**env_tx, "amount": amount, "window": total, "asset": label, "address": address}
                if evaluate(cond, env):
                    out.append(Match("outflow", label, address, {"amount": _json_safe(amount),
                                                                 "window": _json_safe(total), "blocks": window}))
        return out

    def _failure_spike(self, tx: Tx) -> list[Match]:
        f = self.spec.failures
        assert f is not None
        block = tx.block_number if tx.block_number is not None else -1
        q = self._failed
        q.append(block)
        while q and q[0] <= block - f.window_blocks:
            q.popleft()
        while len(q) > f.min_count:  # only the count up to the threshold matters
            q.popleft()
        if len(q) < f.min_count:
            return []
        return [Match("failures", f"{len(q)} failed transactions in {f.window_blocks} blocks", tx.to,
                      {"count": len(q), "blocks": f.window_blocks})]

    def _remember(self, i: int, address: str, block: int, amount: int, window: int) -> None:
        q = self._windows.setdefault((i, address), deque())
        q.append((block, amount))
        while q and q[0][0] <= block - window:
            q.popleft()
        if len(q) > 10_000:  # one address's outflows in one window: bounded all the same
            q.popleft()


def _failed(tx: Tx) -> bool | None:
    """Whether the transaction failed: its receipt's status, else its (simulated) trace's error."""
    if tx.receipt is not None and tx.receipt.status is not None:
        return tx.receipt.status == 0
    if tx.trace is not None:
        return tx.trace.error is not None
    return None


def _tx_env(tx: Tx, failed: bool | None) -> dict[str, Any]:
    return {"hash": tx.hash, "from": tx.sender, "to": tx.to, "value": tx.value or 0, "nonce": tx.nonce,
            "gas": tx.gas, "gas_price": tx.gas_price or tx.max_fee_per_gas or 0,
            "priority_fee": tx.max_priority_fee_per_gas or 0, "selector": tx.input[:10],
            "failed": bool(failed), "block": tx.block_number}


def _frames(tx: Tx) -> Iterator[tuple[CallFrame, int]]:
    """Every frame of the call tree, depth first (the top-level call alone without a trace)."""
    if tx.trace is None:
        yield CallFrame("CALL", tx.sender or "", tx.to, tx.value, tx.input), 0
        return
    stack = [(tx.trace, 0)]
    while stack:
        f, d = stack.pop()
        yield f, d
        stack.extend((c, d + 1) for c in reversed(f.calls))


def touched(tx: Tx) -> set[str]:
    """Every address the transaction touches: its sender and target, every frame's, every log's."""
    out = {a for f, _ in _frames(tx) for a in (f.sender, f.to) if a}
    if tx.sender:
        out.add(tx.sender)
    if tx.receipt is not None:
        out.update(log.address for log in tx.receipt.logs)
        if tx.receipt.contract_address:
            out.add(tx.receipt.contract_address)
    return out


def net_outflows(tx: Tx, watched: frozenset[str]) -> Mapping[tuple[str, str | None], int]:
    """(watched address, asset) -> what left it less what came in, in this transaction; asset None is ETH."""
    net: dict[tuple[str, str | None], int] = {}
    for asset, src, dst, amount in _moves(tx):
        if src in watched:
            net[(src, asset)] = net.get((src, asset), 0) + amount
        if dst in watched:
            net[(dst, asset)] = net.get((dst, asset), 0) - amount
    return net


def _moves(tx: Tx) -> list[tuple[str | None, str | None, str | None, int]]:
    if tx.trace is not None:
        if tx.receipt is not None and tx.receipt.status == 0:
            return []
        return walk(tx, tx.trace).moves
    moves: list[tuple[str | None, str | None, str | None, int]] = []
    if tx.receipt is not None and tx.receipt.status == 0:
        return moves
    if tx.value:
        moves.append((None, tx.sender, tx.to, tx.value))
    for log in tx.receipt.logs if tx.receipt is not None else ():
        if len(log.topics) == 3 and log.topics[0] == TRANSFER_TOPIC and len(log.data) == 66:
            moves.append((log.address, "0x" + log.topics[1][-40:], "0x" + log.topics[2][-40:], int(log.data, 16)))
    return moves


__all__ = ["EvalError", "Match", "Monitor", "MonitorError", "net_outflows", "touched"]

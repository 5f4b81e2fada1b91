"""Early warning at deployment: a contract creation scored when it happens, before it is used.

Most exploits run through a contract the attacker deployed minutes or blocks before. Its runtime
code (the CREATE frame's output: in the block's trace, or in a pending creation's simulated one)
and its deployer tell a lot: an attack contract calls into flash-loan lenders, DEXes, lending
markets, oracles and other contracts' initialisers, implements their callbacks, has one or two
functions of its own, emits no events, has no token interface, and is often deployed by a wallet
on its first transactions or funded through a contract (a mixer, a bridge). Each sign adds
evidence (:data:`SIGNS`); at ``threshold`` a ``suspicious`` finding names the new contract.

The flagged contracts are remembered (LRU): an alert on a later transaction that runs through one
links to the deployment's alert (:meth:`DeploymentWatch.related`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingest.events import CallFrame, Tx

from .base import Contribution, Finding
from .selectors import CALLBACK_SELECTORS, FLASH_SELECTORS, KIND_OF, TOKEN_HOOKS

DETECTOR = "deployment"
TOTAL_SUPPLY = "0x18160ddd"
_CALLED_KINDS = {"v2_swap": "a DEX swap", "lending": "a lending market", "oracle": "a price oracle",
                 "takeover": "another contract's initialiser or owner change", "liquidation": "a liquidation"}
_LOGS = frozenset(range(0xA0, 0xA5))
_CALLS = frozenset({0xF1, 0xF2, 0xF4, 0xFA})
_SELFDESTRUCT, _PUSH4, _EQ = 0xFF, 0x63, 0x14
# withdrawals from another contract (ETH banks, vaults): what a drain through re-entry calls
WITHDRAWALS = frozenset({"0x3ccfd60b", "0x2e1a7d4d", "0xba087652", "0xb460af94", "0xdb006a75"})
# the compiler's metadata (CBOR: ipfs or swarm hash, solc version), data that must not be read as code
_METADATA = re.compile(rb"\xa2\x64ipfs\x58\x22.{34}\x64solc\x43.{3}\x00\x33"
                       rb"|\xa2\x65bzzr[01]\x58\x20.{32}\x64solc\x43.{3}\x00\x32|\xa1\x65bzzr0\x58\x20.{32}\x00\x29",
                       re.DOTALL)


@dataclass(slots=True)
class CodeProfile:
    """What a runtime bytecode shows: its own dispatched selectors, the selectors it pushes
    otherwise (calls it makes), and whether it logs, calls out, or can self-destruct."""

    own: set[str] = field(default_factory=set)
    called: set[str] = field(default_factory=set)
    logs: bool = False
    calls: bool = False
    selfdestruct: bool = False
    size: int = 0


def profile(code: bytes) -> CodeProfile:
    """Walk the opcodes (PUSH data skipped). A PUSH4 compared with EQ (the dispatcher) is one of
    the contract's own functions; any other PUSH4 is a selector it calls."""
    p = CodeProfile(size=len(code))
    code = _METADATA.sub(b"", code)
    i, n = 0, len(code)
    while i < n:
        op = code[i]
        if 0x60 <= op <= 0x7F:
            width = op - 0x5F
            if op == _PUSH4 and i + 5 <= n:
                sel = "0x" + code[i + 1:i + 5].hex()
                nxt = code[i + 5] if i + 5 < n else 0
                (p.own if nxt == _EQ else p.called).add(sel)
            i += 1 + width
            continue
        if op in _LOGS:
            p.logs = True
        elif op in _CALLS:
            p.calls = True
        elif op == _SELFDESTRUCT:
            p.selfdestruct = True
        i += 1
    p.called -= p.own
    return p


def creations(tx: Tx) -> Iterator[tuple[CallFrame, str]]:
    """The contracts a transaction creates, with their code, from its call tree: the runtime code
    (the frame's output) or, where the trace leaves it out, the init code (which holds it)."""
    if tx.trace is None:
        return
    stack = [tx.trace]
    while stack:
        f = stack.pop()
        code = f.output if f.output and len(f.output) > 2 else f.input
        if f.type in ("CREATE", "CREATE2") and f.error is None and f.to and len(code) > 2:
            yield f, code
        stack.extend(f.calls)


def signs(p: CodeProfile, tx: Tx, funded_by_contract: bool) -> list[Contribution]:
    """The evidence a new contract's code and deployer give, largest first."""
    out: list[Contribution] = []
    flash = p.called & FLASH_SELECTORS
    if flash:
        out.append(Contribution("calls_flash_loan", float(len(flash)), 2.0, "calls a flash-loan lender"))
    callbacks = p.own & (CALLBACK_SELECTORS - TOKEN_HOOKS)
    if callbacks:
        out.append(Contribution("implements_callback", float(len(callbacks)), 1.5,
                                "implements a flash-loan or swap callback"))
    kinds = sorted({KIND_OF[s] for s in p.called if KIND_OF.get(s) in _CALLED_KINDS})
    if kinds:
        why = "calls " + ", ".join(_CALLED_KINDS[k] for k in kinds)
        out.append(Contribution("calls_protocol_kinds", float(len(kinds)), min(2.0, 1.5 * len(kinds)), why))
    if p.called & WITHDRAWALS:
        out.append(Contribution("calls_withdraw", 1.0, 1.0, "calls another contract's withdraw"))
    if p.calls and not p.logs:
        out.append(Contribution("no_events", 1.0, 1.0, "calls other contracts and emits no events"))
    if p.calls and len(p.own) <= 3 and TOTAL_SUPPLY not in p.own:
        out.append(Contribution("few_functions", float(len(p.own)), 1.0,
                                f"{len(p.own)} function(s) of its own and no token interface"))
    if p.selfdestruct:
        out.append(Contribution("selfdestruct", 1.0, 1.0, "can self-destruct"))
    if tx.nonce is not None and tx.nonce <= 1:
        out.append(Contribution("fresh_deployer", float(tx.nonce), 1.0,
                                "deployed on its deployer's first transactions"))
    if funded_by_contract:
        out.append(Contribution("deployer_funded_by_contract", 1.0, 1.5,
                                "its deployer's first ETH came from a contract (a mixer, a bridge)"))
    out.sort(key=lambda c: -c.contribution)
    return out


class DeploymentWatch:
    """Scores contract creations; remembers the flagged contracts to link later alerts to them."""

    def __init__(self, threshold: float = 3.0, max_flagged: int = 10_000) -> None:
        self.threshold = threshold
        self.max_flagged = max_flagged
        self._flagged: OrderedDict[str, str] = OrderedDict()  # contract -> deployment tx hash

    def findings(self, txs: Sequence[Tx], stage: str, block_hash: str | None = None,
                 funded_by_contract: Callable[[str | None], bool] | None = None) -> list[Finding]:
        """The suspicious deployments among ``txs``, one finding per transaction (about the most
        suspicious contract it created; its alert id is the transaction's); ``funded_by_contract``:
        whether a sender's first ETH came from a contract (the engine's wallet profiles know)."""
        out = []
        for tx in txs:
            funded = funded_by_contract is not None and funded_by_contract(tx.sender)
            flagged: list[tuple[float, str, int, list[Contribution]]] = []
            for frame, code in creations(tx):
                try:
                    raw = bytes.fromhex(code[2:])
                except ValueError:
                    continue
                terms = signs(profile(raw), tx, funded)
                evidence = sum(c.contribution for c in terms)
                if evidence >= self.threshold and frame.to is not None:
                    self._remember(frame.to, tx.hash)  # (a pending deployment too: an exploit may follow at once)
                    flagged.append((evidence, frame.to, len(raw), terms))
            if flagged:
                out.append(self._finding(tx, stage, block_hash, flagged))
        return out

    def _finding(self, tx: Tx, stage: str, block_hash: str | None,
                 flagged: list[tuple[float, str, int, list[Contribution]]]) -> Finding:
        evidence, contract, size, terms = max(flagged, key=lambda f: (f[0], f[1]))
        more = f" (and {len(flagged) - 1} more contract(s) like it)" if len(flagged) > 1 else ""
        return Finding(
            tx_hash=tx.hash, block_number=tx.block_number, block_hash=block_hash, stage=stage,
            score=round(min(1.0, evidence / (2 * self.threshold)), 6), severity="medium", type="suspicious",
            detector=DETECTOR, title=f"Suspicious contract deployed: {contract}",
            description=f"{tx.sender} deployed {contract} ({size} bytes) in {tx.hash}{more}: "
                        + "; ".join(c.why for c in terms),
            addresses=[a for a in (tx.sender, contract) if a], explanation=terms)

    def _remember(self, contract: str, tx_hash: str) -> None:
        self._flagged[contract] = tx_hash
        self._flagged.move_to_end(contract)
        while len(self._flagged) > self.max_flagged:
            self._flagged.popitem(last=False)

    def state(self) -> dict[str, Any]:
        return {"flagged": list(self._flagged.items())}

    def load_state(self, state: dict[str, Any]) -> None:
        self._flagged = OrderedDict((str(c), str(h)) for c, h in state.get("flagged", ()))

    def related(self, tx: Tx) -> list[tuple[str, str, str]]:
        """The flagged deployments ``tx`` runs through, as (tx hash, detector, subject) of their findings."""
        if not self._flagged:
            return []
        touched = {tx.to}
        stack = [tx.trace] if tx.trace is not None else []
        while stack:
            f = stack.pop()
            touched.add(f.to)
            stack.extend(f.calls)
        found = {self._flagged[a] for a in touched if a is not None and a in self._flagged}
        return [(h, DETECTOR, h) for h in sorted(found) if h != tx.hash]

"""Every monitor in force, run over each scored transaction: their findings, ready for the alert stage.

A monitor's finding is about its transaction (the detector is ``monitor/<name>``, so its alert id
is stable from the mempool to the block), names the watched address it matched last in
``addresses`` (grouping and allowlists key on it), and carries the matches (decoded call, event,
outflow) in ``matches``. A condition that cannot be evaluated on a transaction (a division by
zero, a missing argument) skips that monitor for that transaction, counts an error
(``on_error``), and is logged once per monitor per minute; the pipeline goes on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence

from ingest.events import Tx

from ..base import Contribution, Finding
from .expr import EvalError
from .monitor import Match, Monitor, touched

log = logging.getLogger(__name__)
_FIELD = re.compile(r"\{(monitor|match|address|tx_hash|stage)\}")


class MonitorSet:
    """The monitors in force (replaced as a whole when the API changes one: :meth:`replace`)."""

    def __init__(self, monitors: Iterable[Monitor] = (), chain_id: int | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.chain_id = chain_id
        self.on_error = on_error
        self._logged: dict[str, float] = {}
        self.monitors: list[Monitor] = []
        self.replace(monitors)

    def replace(self, monitors: Iterable[Monitor]) -> None:
        """Swap in a new set; each kept monitor (same name) keeps its outflow windows."""
        old = {m.name: m for m in self.monitors}
        fresh = [m for m in monitors if m.spec.enabled]
        for m in fresh:
            prev = old.get(m.name)
            if prev is not None and prev.spec.outflows == m.spec.outflows:
                m._windows = prev._windows
        self.monitors = fresh

    def __len__(self) -> int:
        return len(self.monitors)

    def get(self, name: str) -> Monitor | None:
        return next((m for m in self.monitors if m.name == name), None)

    def findings(self, txs: Sequence[Tx], stage: str, scores: Sequence[tuple[float | None, list[str]]],
                 block_hash: str | None = None) -> list[Finding]:
        """The monitors' findings on ``txs`` (each with its fused score and rules held), in order."""
        if not self.monitors:
            return []
        active = [m for m in self.monitors if m.spec.chain_id in (None, self.chain_id)]
        out = []
        for tx, (score, rules) in zip(txs, scores, strict=True):
            seen = touched(tx)
            for m in active:
                if not m.touches(seen):
                    continue
                try:
                    found = m.match(tx, stage, score, rules)
                except (EvalError, ArithmeticError, TypeError) as err:  # (a monitor never stops the pipeline)
                    self._error(m, tx, err)
                    continue
                if found:
                    out.append(finding(m, tx, stage, found, block_hash))
        return out

    def _error(self, m: Monitor, tx: Tx, err: Exception) -> None:
        if self.on_error is not None:
            self.on_error(m.name)
        now = time.monotonic()
        if now - self._logged.get(m.name, -1e9) >= 60.0:
            self._logged[m.name] = now
            log.warning("monitor %s: a condition could not be evaluated on transaction %s: %s "
                        "(skipped; logged once a minute per monitor)", m.name, tx.hash, err)


def finding(m: Monitor, tx: Tx, stage: str, found: list[Match], block_hash: str | None) -> Finding:
    spec = m.spec
    first = found[0]
    subject = next((x.address for x in reversed(found) if x.address in m.addresses), None) or sorted(m.addresses)[0]
    fields = {"monitor": m.name, "match": f"{first.kind} {first.name}", "address": subject, "tx_hash": tx.hash,
              "stage": stage}
    title = _FIELD.sub(lambda g: str(fields[g.group(1)]), spec.title)
    described = "; ".join(_describe(x) for x in found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
    addresses = [a for a in dict.fromkeys([tx.sender, *(x.address for x in found), subject]) if a]
    addresses.remove(subject)
    addresses.append(subject)
    return Finding(
        tx_hash=tx.hash, block_number=tx.block_number, block_hash=block_hash, stage=stage, score=1.0,
        severity=spec.severity, type=spec.type, detector=f"monitor/{m.name}", title=title,
        description=f"monitor {m.name} on {stage} transaction {tx.hash} from {tx.sender}: {described}",
        addresses=addresses,
        explanation=[Contribution(f"{x.kind}:{x.name}", 1.0, 0.0, _describe(x)) for x in found[:10]],
        matches=list(found),
    )


def _describe(x: Match) -> str:
    args = ", ".join(f"{k}={v}" for k, v in list(x.args.items())[:8])
    where = f" on {x.address}" if x.address else ""
    return f"{x.kind} {x.name}{where}" + (f" ({args})" if args else "")

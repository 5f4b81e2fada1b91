"""Wallet behaviour: per-address profiles learned online, and a behaviour score per address.

Each address a transaction involves (sender and recipient) has a profile: transactions in and
out, distinct counterparties each way (exact up to ``max_counterparties``; past the cap a
counterparty not among those kept counts as new: an over-estimate, stated), ETH in and out, plain
transfers versus contract calls, failed transactions, first and last seen time, and the funding
source (who first sent it ETH). Profiles live in an LRU bounded to ``max_wallets`` (about 0.8 KB
each typically, up to ~3 KB at the counterparty cap), so memory is bounded by configuration;
measured in ``benchmarks/``.

The behaviour score reads shapes that fraud accounts share rather than any address:
- a busy account whose whole activity falls in a short period, well under a year (scam addresses
  are used, reported and abandoned); it counts half when the payments it receives are large;
- many small incoming payments (victims paying);
- most of what came in sent on (sweeping);
- the account emptied: what it received all sent on, within 5% (a collection or pass-through
  account keeps nothing; an ordinary wallet rarely ends at zero).
The score of an address is read after each of its transactions, so a signal that every new account
shows (being young) counts only once the account is busy (5+ transactions).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from ingest.events import Tx

from .base import Contribution, dict_get, move_to_end

WEI = 10**18
_LOG_YEAR = math.log1p(365.0)  # a busy life shorter than a year counts
_LOG101 = math.log1p(100.0)
_EMPTIED_LO, _EMPTIED_HI = 0.95, 1.05  # sent on what it received, within 5% (fees, rounding)


class Profile:
    __slots__ = (
        "contract_calls_out",
        "failed_out",
        "first",
        "funder",
        "ins",
        "last",
        "n_recv_from",
        "n_sent_to",
        "outs",
        "plain_in",
        "recv_from",
        "sent_to",
        "value_in",
        "value_out",
    )

    def __init__(self, now: float) -> None:
        self.ins = self.outs = self.plain_in = self.contract_calls_out = self.failed_out = 0
        self.n_recv_from = self.n_sent_to = 0
        self.value_in = self.value_out = 0.0
        self.first = self.last = now
        self.funder: str | None = None  # who first sent it ETH (its funding source)
        self.recv_from: set[str] = set()
        self.sent_to: set[str] = set()

    def age_days(self, now: float) -> float:
        """Days since the stream first saw the address (0 for a clock that went back)."""
        return max(0.0, now - self.first) / 86400

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # one pickled form whether the class is compiled (C fields) or not (slots): snapshots
        # move between the two builds; older snapshots (slot state) load in both as well
        return _profile, tuple(getattr(self, name) for name in Profile.__slots__)


def _profile(*values: Any) -> Profile:
    p = Profile.__new__(Profile)
    for name, value in zip(Profile.__slots__, values, strict=True):
        setattr(p, name, value)
    return p


class WalletBehaviour:
    """Per-address profiles and behaviour scores (see module docstring)."""

    name = "wallet"

    def __init__(self, max_wallets: int = 200_000, max_counterparties: int = 32) -> None:
        self.max_wallets = max_wallets
        self.max_counterparties = max_counterparties
        self._profiles: OrderedDict[str, Profile] = OrderedDict()

    def __len__(self) -> int:
        return len(self._profiles)

    @property
    def profiles(self) -> OrderedDict[str, Profile]:
        """The profiles by address (read-only use: reading one does not refresh it in the LRU)."""
        return self._profiles

    def _get(self, address: str, now: float) -> Profile:
        """The LRU: a new profile at the end, evicting the oldest past the bound; a hit moves to the end."""
        profiles = self._profiles
        p = dict_get(profiles, address)
        if p is None:
            p = profiles[address] = Profile(now)
            if len(profiles) > self.max_wallets:
                profiles.popitem(last=False)
        else:
            move_to_end(profiles, address)
        return p

    def learn_tx(self, tx: Tx, now: float, value_eth: float | None = None) -> None:
        """Update the sender's and the recipient's profiles with ``tx`` (``value_eth``: its value in
        ETH, when already computed)."""
        value = value_eth if value_eth is not None else (tx.value or 0) / WEI
        ok = tx.receipt is None or tx.receipt.status != 0
        cap = self.max_counterparties
        sender, to = tx.sender, tx.to
        if sender is not None:
            p = self._get(sender, now)
            p.outs += 1
            p.last = now
            if not ok:
                p.failed_out += 1
            if len(tx.input) >= 10:
                p.contract_calls_out += 1
            if ok:
                p.value_out += value
            if to is not None and to not in p.sent_to:
                p.n_sent_to += 1
                if len(p.sent_to) < cap:
                    p.sent_to.add(to)
        if to is not None and ok:
            q = self._get(to, now)
            q.ins += 1
            q.last = now
            q.value_in += value
            if q.funder is None and value > 0 and sender is not None:
                q.funder = sender
            if len(tx.input) <= 2:
                q.plain_in += 1
            if sender is not None and sender not in q.recv_from:
                q.n_recv_from += 1
                if len(q.recv_from) < cap:
                    q.recv_from.add(sender)

    def funder(self, address: str) -> str | None:
        p = self._profiles.get(address)
        return p.funder if p is not None else None

    def age_days(self, address: str, now: float) -> float | None:
        p = self._profiles.get(address)
        return p.age_days(now) if p is not None else None

    def features(self, address: str) -> dict[str, float] | None:
        p = self._profiles.get(address)
        if p is None:
            return None
        span_days = max(p.last - p.first, 0.0) / 86400
        return {
            "ins": p.ins, "outs": p.outs, "payers": p.n_recv_from, "payees": p.n_sent_to,
            "value_in": p.value_in, "value_out": p.value_out,
            "forwarded": min(p.value_out / p.value_in, 1.5) if p.value_in > 0 else 0.0,
            "plain_in_share": p.plain_in / p.ins if p.ins else 0.0,
            "contract_call_share": p.contract_calls_out / p.outs if p.outs else 0.0,
            "failed_share": p.failed_out / p.outs if p.outs else 0.0,
            "span_days": span_days,
        }

    def score(self, address: str) -> float:
        """Behaviour score in [0, 1] for ``address`` from its profile so far (as :meth:`explain` sums)."""
        p = dict_get(self._profiles, address)
        if p is None:
            return 0.0
        total = 0.0
        log101, log_year, lo, hi = _LOG101, _LOG_YEAR, _EMPTIED_LO, _EMPTIED_HI  # C doubles when compiled
        small = max(0.0, 1.0 - math.log1p(p.value_in / p.ins) / log101) if p.ins else 0.0
        if p.ins + p.outs >= 5:
            span = max(p.last - p.first, 0.0) / 86400
            burst = max(0.0, 1.0 - math.log1p(span) / log_year)
            total += burst * (0.5 + 0.5 * small) if p.ins else burst
        if p.ins >= 3:
            total += small
        if p.value_in > 0:
            forwarded = p.value_out / p.value_in
            if forwarded > 0.7 and p.n_recv_from >= 2:
                total += 0.3
            if p.outs and lo <= forwarded <= hi:
                total += 0.5
        return _squash(total)

    def explain(self, address: str) -> list[Contribution]:
        f = self.features(address)
        if f is None:
            return []
        out: list[Contribution] = []
        n = f["ins"] + f["outs"]
        span = f["span_days"]
        avg_in = f["value_in"] / f["ins"] if f["ins"] else 0.0
        small = max(0.0, 1.0 - math.log1p(avg_in) / _LOG101) if f["ins"] else 0.0
        if n >= 5:  # a young account is not suspicious for being young: it must also be busy
            burst = max(0.0, 1.0 - math.log1p(span) / _LOG_YEAR)
            if f["ins"]:  # half as much when what comes in is large (victims pay small amounts)
                burst *= 0.5 + 0.5 * small
            if burst > 0:
                out.append(Contribution("span_days", span, burst, "busy, and all of it within a short period"))
        if f["ins"] >= 3 and small > 0:
            out.append(Contribution("avg_payment_in_eth", avg_in, small, "many small incoming payments"))
        if f["value_in"] > 0 and f["forwarded"] > 0.7 and f["payers"] >= 2:
            out.append(Contribution("forwarded", f["forwarded"], 0.3, "most of what came in was sent on"))
        if f["value_in"] > 0 and f["outs"] and _EMPTIED_LO <= f["forwarded"] <= _EMPTIED_HI:
            out.append(Contribution("emptied", f["forwarded"], 0.5, "emptied: all it received was sent on"))
        return sorted(out, key=lambda c: -c.contribution)

    def state(self) -> dict[str, Any]:
        return {"profiles": self._profiles}

    def load_state(self, state: dict[str, Any]) -> None:
        self._profiles = state["profiles"]


def _squash(x: float) -> float:
    """Evidence sum to [0, 1): 1 - exp(-x / 3)."""
    return 1.0 - math.exp(-x / 3.0) if x > 0 else 0.0

"""Features from what the stream learned before the transaction: novelty, familiarity, age."""

from __future__ import annotations

import math

from ingest.events import Tx

from ..entities import EntityView
from .base import EntityUnit


class CalledContractAge(EntityUnit):
    """Of the called contract, when the stream saw its creation: ``to_created_by_sender``: created by
    this sender; ``to_age_hours``: how long ago."""

    names = ("to_created_by_sender", "to_age_hours")

    def compute(self, tx: Tx, out: dict[str, float], entities: EntityView, now: float) -> None:
        born = entities.creation(tx.to)
        if born is not None:
            out["to_created_by_sender"] = 1.0 if born[0] == tx.sender else 0.0
            out["to_age_hours"] = max(0.0, now - born[1]) / 3600


class Novelty(EntityUnit):
    """Once the stream is warm: ``contract_calls_before`` (0: the first call to this contract),
    ``contract_callers_before`` (distinct senders, up to 32), ``selector_new_on_contract`` (a
    function never called on a contract called 20 times before), ``selector_seen_before`` (on any
    contract), ``sender_txs_before``, and ``frames_z_on_contract``: the call tree's size against
    what the contract usually sees (a z-score of log frames, once it has 20 traced calls)."""

    names = ("contract_calls_before", "contract_callers_before", "frames_z_on_contract",
             "selector_new_on_contract", "selector_seen_before", "sender_txs_before")

    def compute(self, tx: Tx, out: dict[str, float], entities: EntityView, now: float) -> None:
        if not entities.warm:
            return  # cold: everything is new at the start of a stream
        if tx.to is not None and len(tx.input) >= 10:
            c = entities.contract(tx.to)
            out["contract_calls_before"] = float(c.calls) if c else 0.0
            out["contract_callers_before"] = float(len(c.callers)) if c else 0.0
            frames = out.get("frames")
            if c and frames is not None and c.n >= 20:
                out["frames_z_on_contract"] = (math.log1p(frames) - c.mean) / max(c.frames_std(), 0.25)
            sel = tx.input[:10]
            out["selector_new_on_contract"] = 1.0 if c and c.calls >= 20 and sel not in c.selectors else 0.0
            out["selector_seen_before"] = float(entities.selector_count(sel))
        if tx.sender is not None:
            out["sender_txs_before"] = float(entities.sender_txs(tx.sender))


class SenderProfile(EntityUnit):
    """Once the stream is warm, of a sender with a wallet profile: ``sender_age_days`` (since the
    stream first saw it) and ``sender_funded_by_contract`` (its first ETH came from a contract: a
    mixer, a bridge, a factory)."""

    names = ("sender_age_days", "sender_funded_by_contract")

    def compute(self, tx: Tx, out: dict[str, float], entities: EntityView, now: float) -> None:
        if not entities.warm or tx.sender is None:
            return
        profile = entities.profile(tx.sender)
        if profile is not None:
            out["sender_age_days"] = profile.age_days(now)
            if profile.funder is not None:
                out["sender_funded_by_contract"] = 1.0 if entities.is_called_contract(profile.funder) else 0.0

"""The feature units, registered in one place: what every transaction is described by.

A unit is one feature or a small family of related ones (:mod:`.base`). The built-in units are
listed below, in the order they run: transaction units, then trace units over one shared walk of
the call tree (:mod:`detectors.traversal`), then entity units (which may read the others'
features). To add a feature: write a unit (copy the smallest one that reads what yours reads),
``register`` it (here, or from your own module before the engine is built), use its names in a
rule file, and test it; the rules, the explanations and the snapshots pick it up from here.
"""

from __future__ import annotations

from .. import selectors
from .base import EntityUnit, TraceUnit, TxUnit
from .counterfeit import Counterfeits
from .logs import Logs
from .novelty import CalledContractAge, Novelty, SenderProfile
from .protocols import FlashLoans, ForgedCallbacks, Governance, Lending, ReserveSyncs
from .reentry import ReentrantPriceReads, Reentry
from .takeover import Takeover
from .tokens import BorrowRepay, GrantedApprovals, ThirdPartyAllowances, ThirdPartyPulls, TokenActivity, UnpaidPulls
from .transaction import Transaction
from .tree import BareCallTree, Creations, EthFlows, TreeSize
from .value_flow import ValueFlow, VaultDonations

TX_UNITS: list[TxUnit] = [Transaction(), Logs()]
TRACE_UNITS: list[TraceUnit] = [
    TreeSize(), Creations(), EthFlows(), BareCallTree(), Reentry(), ReentrantPriceReads(), TokenActivity(),
    ThirdPartyPulls(), UnpaidPulls(), BorrowRepay(), GrantedApprovals(), ThirdPartyAllowances(), ValueFlow(),
    VaultDonations(), FlashLoans(), Lending(), Governance(), ForgedCallbacks(), ReserveSyncs(), Takeover(),
    Counterfeits(),
]
ENTITY_UNITS: list[EntityUnit] = [CalledContractAge(), Novelty(), SenderProfile()]


def trace_plan(present: frozenset[str]) -> list[tuple[TraceUnit, frozenset[str] | None]]:
    """For a call tree whose steps are of the kinds ``present``: the trace units to call, with the
    kinds they read (a unit naming kinds the tree has none of is not called: its features stay 0).
    Cached per set of kinds; rebuilt after the units change."""
    plan = _plans.get(present)
    if plan is None:
        plan = [(u, u.kinds) for u in TRACE_UNITS if u.kinds is None or not present.isdisjoint(u.kinds)]
        if len(_plans) < 4096:  # (kinds combine in few ways: a few dozen on mainnet blocks)
            _plans[present] = plan
    return plan


def trace_zeros() -> dict[str, float]:
    """The features of the trace units that name kinds, at 0 in unit order: what a traced
    transaction's features start from (those units are not called for a tree without their kinds;
    and the features come in the same order whichever run)."""
    if not _zeros:
        _zeros.update((name, 0.0) for u in TRACE_UNITS if u.kinds is not None for name in u.names)
    return _zeros


_plans: dict[frozenset[str], list[tuple[TraceUnit, frozenset[str] | None]]] = {}
_zeros: dict[str, float] = {}


def feature_names() -> tuple[str, ...]:
    """Every registered feature name, in unit order."""
    units: list[object] = [*TX_UNITS, *TRACE_UNITS, *ENTITY_UNITS]
    return tuple(name for u in units for name in u.names)  # type: ignore[attr-defined]


def register(unit: TxUnit | TraceUnit | EntityUnit, kinds: dict[str, frozenset[str]] | None = None) -> None:
    """Add a unit; ``kinds``: new selector kinds it reads (name -> selectors), disjoint from the
    known ones. A feature name already registered is refused."""
    taken = set(feature_names())
    clash = [n for n in unit.names if n in taken]
    if clash or not unit.names:
        raise ValueError(f"feature {clash[0]!r} is already registered" if clash else "a unit names its features")
    for name, sels in (kinds or {}).items():
        selectors.add_kind(name, sels)
    if isinstance(unit, TraceUnit):
        unknown = sorted(set(unit.kinds or ()) - set(selectors.KINDS))
        if unknown:
            raise ValueError(f"unknown selector kind {unknown[0]!r} (known: {', '.join(selectors.KINDS)})")
        TRACE_UNITS.append(unit)
        _plans.clear()
        _zeros.clear()
    elif isinstance(unit, EntityUnit):
        ENTITY_UNITS.append(unit)
    elif isinstance(unit, TxUnit):
        TX_UNITS.append(unit)
    else:
        raise TypeError(f"{unit!r} is not a TxUnit, a TraceUnit or an EntityUnit")


def unregister(name: str) -> None:
    """Remove the unit that computes feature ``name`` (for tests and experiments)."""
    for registered in (TX_UNITS, TRACE_UNITS, ENTITY_UNITS):
        for u in list(registered):
            if name in u.names:  # type: ignore[attr-defined]
                registered.remove(u)  # type: ignore[arg-type]
    _plans.clear()
    _zeros.clear()

"""Access control: initialisation, ownership and internal-named functions called on live contracts."""

from __future__ import annotations

from collections.abc import Sequence

from ..selectors import ADMIN_EXEC_SELECTORS, TAKEOVER_SELECTORS
from ..traversal import Step, Trace
from .base import TraceUnit


class Takeover(TraceUnit):
    """``takeover_calls``: an initialiser or ownership function (``TAKEOVER_SELECTORS``) called on a
    contract not created in the transaction, or run by delegatecall on a contract's own storage
    (a foreign initialiser); ``internal_calls``: a function named as internal (``_mint``,
    ``_burn``, ``_transfer``, ``_setOwner``, ...) called on a live contract: exposed by mistake.

    What a multisig or timelock executes (``ADMIN_EXEC_SELECTORS`` at the root) is administration,
    and a contract's deployer calling its initialiser or handing its ownership on directly is set-up
    (known when the stream saw the creation): neither counts."""

    names = ("takeover_calls", "internal_calls")
    kinds = frozenset({"takeover", "internal"})

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        takeover = internal = 0
        tx = trace.tx
        admin_root = tx.input[:10].lower() in ADMIN_EXEC_SELECTORS  # a multisig or timelock executing
        for step in steps:
            f = step.frame
            if f.type == "CALL" and not trace.created(f.to, step) and not (admin_root and f.sender == trace.root_to):
                if step.kind == "takeover":
                    takeover += 1
                else:
                    internal += 1
            elif (step.kind == "takeover" and f.type == "DELEGATECALL" and step.sel != step.caller_sel
                  and not trace.created(f.sender, step)):
                takeover += 1  # a contract made to run a foreign initialiser on its own storage
        if takeover and trace.entities is not None and tx.input[:10] in TAKEOVER_SELECTORS:
            born = trace.entities.creation(tx.to)
            if born is not None and born[0] == tx.sender:
                takeover -= 1  # its deployer initialising it, or handing its ownership on
        out["takeover_calls"] = float(takeover)
        out["internal_calls"] = float(internal)

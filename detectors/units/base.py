"""The three shapes a feature unit takes, by what it reads.

A unit computes one feature or a small family of related ones, under stable names (they appear in
explanations and rule files). A feature whose source is absent (no trace, no receipt) is left out
rather than set to 0, so "missing" never reads as a signal.

- :class:`TxUnit` reads the transaction: its fields, its receipt and logs, its block.
- :class:`TraceUnit` reads the call tree through the shared walk (:mod:`detectors.traversal`): for
  each traced transaction it gets the :class:`~detectors.traversal.Trace` and the steps of the
  selector ``kinds`` it names (``None``: every frame), in call order, folds them into its counts
  in one loop, and writes its features. A unit naming kinds is not called for a tree with no step
  of them: its features are 0 then (the contract suite checks that it would write 0).
- :class:`EntityUnit` reads what the stream learned about the transaction's entities (contracts,
  senders, selectors, wallets) through :class:`detectors.entities.EntityView`, when the engine
  scores in a stream.

Register a unit in :mod:`detectors.units` (``register``); the rules can then use its features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ingest.events import Tx

    from ..entities import EntityView
    from ..traversal import Step, Trace


class TxUnit:
    """A unit reading the transaction itself (see the module docstring)."""

    names: ClassVar[tuple[str, ...]] = ()

    def compute(self, tx: Tx, block: Any, out: dict[str, float]) -> None:
        """Write this unit's features of ``tx`` (``block``: its ``BlockContext``, or None) into ``out``."""
        raise NotImplementedError


class TraceUnit:
    """A unit folding the call tree's steps (see the module docstring)."""

    names: ClassVar[tuple[str, ...]] = ()
    kinds: ClassVar[frozenset[str] | None] = None  # selector kinds it reads; None: every frame

    def compute(self, trace: Trace, steps: Sequence[Step], out: dict[str, float]) -> None:
        """Write this unit's features of ``trace`` into ``out``; ``steps``: those of its kinds."""
        raise NotImplementedError


class EntityUnit:
    """A unit reading per-entity state learned from the stream (see the module docstring)."""

    names: ClassVar[tuple[str, ...]] = ()

    def compute(self, tx: Tx, out: dict[str, float], entities: EntityView, now: float) -> None:
        """Write this unit's features of ``tx`` into ``out`` (``out`` holds the other units' already)."""
        raise NotImplementedError

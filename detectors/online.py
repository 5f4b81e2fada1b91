"""An online detector learned from the stream itself: river HalfSpaceTrees.

* :class:`HSTDetector` runs river's HalfSpaceTrees on log-scaled features with fixed limits (no
  scaler to warm up); it is cold for its first ``window_size`` transactions, when HST's reference
  mass is still empty (river scores 0 there: warm-up is explicit).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from .base import Batch, Contribution, Features, Score

# features HST sees, each log1p-scaled into [0, limit]
HST_FEATURES: tuple[tuple[str, float], ...] = (
    ("frames", 8.0), ("depth", 4.0), ("contracts", 6.0), ("delegatecalls", 6.0), ("staticcalls", 7.0),
    ("max_repeat", 6.0), ("reentries", 6.0), ("token_moves", 6.0), ("tokens_touched", 4.0),
    ("balance_checks", 6.0), ("eth_to_sender", 10.0), ("value_eth", 10.0), ("calldata_bytes", 10.0),
    ("creates", 3.0), ("flash_calls", 3.0), ("borrow_repay", 3.0),
)


class HSTDetector:
    """river HalfSpaceTrees on log-scaled features (see module docstring)."""

    name = "hst"
    calibrated = True

    def __init__(self, n_trees: int = 10, height: int = 6, window_size: int = 250, seed: int = 42) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self._model = self._new()
        self._seen = 0
        self._batch: tuple[Batch, dict[int, dict[str, float]]] | None = None

    def _new(self) -> Any:
        # imported here: river's package imports scipy.stats (~1.4 s), which the commands that build
        # no engine (--help, evaluate, record, the ingest and alert workers) should not wait for
        from river import anomaly

        limits: dict[Hashable, tuple[float, float]] = {name: (0.0, hi) for name, hi in HST_FEATURES}
        return anomaly.HalfSpaceTrees(n_trees=self.n_trees, height=self.height, window_size=self.window_size,
                                      limits=limits, seed=self.seed)

    @staticmethod
    def _x(x: Features) -> dict[str, float]:
        out = {}
        for name, hi in HST_FEATURES:
            v = x.get(name)
            out[name] = min(hi, math.log1p(v)) if v is not None and v > 0 else 0.0
        return out

    @property
    def warm(self) -> bool:
        return self._seen >= self.window_size

    def _scaled(self, batch: Batch) -> dict[int, dict[str, float]]:
        """The model's input for the batch's traced transactions (computed once per batch: it is
        scored, then learned)."""
        cached = self._batch
        if cached is not None and cached[0] is batch:
            return cached[1]
        features = batch.features
        scaled = {i: self._x(features[i]) for i in batch.traced}
        self._batch = (batch, scaled)
        return scaled

    def score_many(self, batch: Batch) -> list[Score | None]:
        out: list[Score | None] = [None] * batch.size
        if not batch.traced:
            return out
        scaled = self._scaled(batch)
        if self.warm:
            score_one = self._model.score_one
            for i, hx in scaled.items():
                out[i] = Score(float(score_one(hx)))
        return out

    def learn_many(self, batch: Batch, rows: Sequence[int]) -> None:
        if not batch.traced:
            return
        scaled = self._scaled(batch)
        learn_one = self._model.learn_one
        for i in rows:
            hx = scaled.get(i)
            if hx is not None:
                learn_one(hx)
                self._seen += 1
        self._batch = None

    def explain(self, x: Features) -> list[Contribution]:
        return []  # HST has no per-feature attribution; fusion explains with the other detectors

    def state(self) -> dict[str, Any]:
        return {"model": self._model, "seen": self._seen}

    def load_state(self, state: dict[str, Any]) -> None:
        self._model = state["model"]
        self._seen = int(state["seen"])

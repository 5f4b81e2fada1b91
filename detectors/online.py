"""An online detector learned from the stream itself: river's Half-Space Trees, scored per block.

:class:`HSTDetector` runs Half-Space Trees (Tan et al., 2011) on log-scaled call-tree features with
fixed limits (no scaler to warm up). river builds the random trees (its ``HalfSpaceTrees`` with the
configured seed, on the first transaction learned); their splits and masses are then held as
arrays (:class:`_Masses`) so a block's transactions are scored, and learned, for all trees at once:
the same integer masses and the same scores as river's ``score_one`` / ``learn_one`` one
transaction at a time (``tests/test_detectors.py`` compares them), at a fraction of the cost. The
detector is cold for its first ``window_size`` transactions, when the reference mass is still
empty (river scores 0 there: warm-up is explicit).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from .base import Batch, Contribution, Features, Score

# features HST sees, each log1p-scaled into [0, limit]
HST_FEATURES: tuple[tuple[str, float], ...] = (
    ("frames", 8.0), ("depth", 4.0), ("contracts", 6.0), ("delegatecalls", 6.0), ("staticcalls", 7.0),
    ("max_repeat", 6.0), ("reentries", 6.0), ("token_moves", 6.0), ("tokens_touched", 4.0),
    ("balance_checks", 6.0), ("eth_to_sender", 10.0), ("value_eth", 10.0), ("calldata_bytes", 10.0),
    ("creates", 3.0), ("flash_calls", 3.0), ("borrow_repay", 3.0),
)
_COLUMN = {name: i for i, (name, _) in enumerate(HST_FEATURES)}


def river_model(n_trees: int, height: int, window_size: int, seed: int) -> Any:
    """river's HalfSpaceTrees over ``HST_FEATURES`` (imported here: river imports scipy.stats,
    ~1.4 s, which the commands that build no engine should not wait for)."""
    from river import anomaly

    limits: dict[Hashable, tuple[float, float]] = {name: (0.0, hi) for name, hi in HST_FEATURES}
    return anomaly.HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, limits=limits, seed=seed)


def scale(x: Features) -> list[float]:
    """The model's input for ``x``: each HST feature log1p-scaled and capped at its limit."""
    out = []
    for name, hi in HST_FEATURES:
        v = x.get(name)
        out.append(min(hi, math.log1p(v)) if v is not None and v > 0 else 0.0)
    return out


class _Masses:
    """river's trees as arrays: complete binary trees in heap order (node i's children are 2i+1 and
    2i+2), the split feature and threshold of each branch, the reference and latest mass of each node."""

    def __init__(self, model: Any, height: int) -> None:
        self.height = height
        n_branches, n_nodes = 2**height - 1, 2 ** (height + 1) - 1
        trees = len(model.trees)
        self.feature = np.zeros((trees, n_branches), dtype=np.intp)
        self.threshold = np.zeros((trees, n_branches))
        self.r_mass = np.zeros((trees, n_nodes), dtype=np.int64)
        self.l_mass = np.zeros((trees, n_nodes), dtype=np.int64)
        for t, root in enumerate(model.trees):
            level = [root]
            i = 0
            while level:
                nxt = []
                for node in level:
                    self.r_mass[t, i], self.l_mass[t, i] = node.r_mass, node.l_mass
                    if i < n_branches:
                        self.feature[t, i] = _COLUMN[node.feature]
                        self.threshold[t, i] = node.threshold
                        nxt += node.children
                    i += 1
                level = nxt

    def paths(self, rows: np.ndarray) -> np.ndarray:
        """(levels, trees, rows): the node each row is at on each level of each tree."""
        trees, n = self.feature.shape[0], len(rows)
        at = np.zeros((trees, n), dtype=np.intp)
        out = np.empty((self.height + 1, trees, n), dtype=np.intp)
        tree = np.arange(trees)[:, None]
        for level in range(self.height):
            out[level] = at
            value = rows[np.arange(n)[None, :], self.feature[tree, at]]
            at = 2 * at + 1 + (value >= self.threshold[tree, at])  # left when value < threshold
        out[self.height] = at
        return out

    def scores(self, paths: np.ndarray, size_limit: float) -> list[int]:
        """river's raw score of each row: over the trees, the reference mass times 2**depth summed
        down the path, stopping after the first node whose mass is under ``size_limit``."""
        tree = np.arange(self.r_mass.shape[0])[:, None]
        total = np.zeros(paths.shape[2], dtype=np.int64)
        alive = np.ones(paths.shape[1:], dtype=bool)
        for level in range(self.height + 1):
            r = self.r_mass[tree, paths[level]]
            total += (r * (1 << level) * alive).sum(axis=0)
            alive &= r >= size_limit
        return [int(v) for v in total]

    def learn(self, paths: np.ndarray) -> None:
        """Add the rows of ``paths`` to the latest mass of every node they pass."""
        n_nodes = self.l_mass.shape[1]
        for t in range(self.l_mass.shape[0]):
            self.l_mass[t] += np.bincount(paths[:, t, :].ravel(), minlength=n_nodes)

    def pivot(self) -> None:
        """A window is full: the latest mass becomes the reference."""
        self.r_mass = self.l_mass
        self.l_mass = np.zeros_like(self.r_mass)


class HSTDetector:
    """Half-Space Trees on log-scaled features (see module docstring)."""

    name = "hst"
    calibrated = True

    def __init__(self, n_trees: int = 10, height: int = 6, window_size: int = 250, seed: int = 42) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self._river: Any = river_model(n_trees, height, window_size, seed)  # builds the trees at its first learn
        self._masses: _Masses | None = None  # river's trees as arrays, from the first transaction learned
        self._counter = 0  # transactions learned in the current window
        self._seen = 0
        self._batch: tuple[Batch, np.ndarray] | None = None

    @property
    def warm(self) -> bool:
        return self._seen >= self.window_size

    def _paths(self, batch: Batch) -> np.ndarray:
        """The paths of the batch's traced transactions (computed once per batch: scored, then learned)."""
        cached = self._batch
        if cached is not None and cached[0] is batch:
            return cached[1]
        assert self._masses is not None
        features = batch.features
        rows = np.array([scale(features[i]) for i in batch.traced], dtype=np.float64).reshape(-1, len(HST_FEATURES))
        paths = self._masses.paths(rows)
        self._batch = (batch, paths)
        return paths

    def score_many(self, batch: Batch) -> list[Score | None]:
        out: list[Score | None] = [None] * batch.size
        if not batch.traced or not self.warm or self._masses is None:
            return out
        top = self.n_trees * self.window_size * (2 ** (self.height + 1) - 1)  # river's largest score
        raw = self._masses.scores(self._paths(batch), 0.1 * self.window_size)
        for i, s in zip(batch.traced, raw, strict=True):
            out[i] = Score(1 - s / top)
        return out

    def learn_many(self, batch: Batch, rows: Sequence[int]) -> None:
        if not batch.traced:
            return
        if self._masses is None:  # river builds the trees from the first transaction, and learns it
            traced = set(batch.traced)
            first = next((i for i in rows if i in traced), None)
            if first is None:
                return
            self._river.learn_one(dict(zip(_COLUMN, scale(batch.features[first]), strict=True)))
            self._masses = _Masses(self._river, self.height)
            self._river = None
            self._counter = self._seen = 1
            rows = [i for i in rows if i != first]
        position = {i: k for k, i in enumerate(batch.traced)}
        learn = [position[i] for i in rows if i in position]
        if not learn:
            self._batch = None
            return
        paths = self._paths(batch)[:, :, learn]
        start = 0
        while start < len(learn):  # in windows: the masses pivot when one is full
            take = min(len(learn) - start, self.window_size - self._counter)
            self._masses.learn(paths[:, :, start : start + take])
            start += take
            self._counter += take
            self._seen += take
            if self._counter == self.window_size:
                self._masses.pivot()
                self._counter = 0
        self._batch = None

    def explain(self, x: Features) -> list[Contribution]:
        return []  # HST has no per-feature attribution; fusion explains with the other detectors

    def state(self) -> dict[str, Any]:
        return {"masses": self._masses, "counter": self._counter, "seen": self._seen}

    def load_state(self, state: dict[str, Any]) -> None:
        self._masses = state["masses"]
        self._counter = int(state["counter"])
        self._seen = int(state["seen"])
        self._batch = None

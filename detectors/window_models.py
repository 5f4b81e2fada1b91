"""The window ensemble's models, fitted once and scored cheaply on every block.

pyod scores new rows by redoing its fit's work: ECOD and COPOD rebuild their empirical CDFs over
the whole training window at every call, HBOS runs a numba kernel that compiles on first use
(~2 s a process, and LLVM's memory), and an isolation forest goes through joblib per call. Here
each model keeps what its fit learned and scores a batch against it:

- :class:`Forest`: pyod's ``IForest`` (scikit-learn's isolation forest) fitted as usual, its trees
  then stacked into flat arrays and walked for all rows and trees at once; the score is
  scikit-learn's (path length, normalised), negated so higher is more anomalous.
- :class:`Tails`: ECOD (``copula=False``) and COPOD (``copula=True``), from each feature's sorted
  training values: a row's left and right tail probabilities are found by binary search, then
  combined as pyod combines them (per feature -log tail, skew-corrected; summed). The skewness is
  the training window's (pyod's includes the rows being scored, so one far-out row can flip it).
- :class:`Histograms`: HBOS, from each feature's training histogram (pyod's ``static`` mode:
  ``n_bins`` equal-width bins, log2 of the density plus ``alpha``, ``tol`` of a bin's width of
  grace outside the edges), as numpy lookups.

Every model maps a (rows, features) matrix to one score per row, higher = more anomalous, with
no randomness at scoring time: the same window gives the same scores.
"""

from __future__ import annotations

import numpy as np


class Forest:
    """An isolation forest as flat arrays (see module docstring)."""

    def __init__(self, data: np.ndarray, n_estimators: int = 50, seed: int = 42) -> None:
        from pyod.models.iforest import IForest
        from sklearn.ensemble._iforest import _average_path_length

        fitted = IForest(n_estimators=n_estimators, random_state=seed).fit(data)
        model = fitted.detector_
        # the training rows' scores, as :meth:`score` gives them (pyod's are scikit-learn's offset)
        self.train_scores = np.asarray(fitted.decision_scores_, dtype=np.float64) - model.offset_
        lefts, rights, feats, thresholds, values = [], [], [], [], []
        offset = 0
        for t, (tree, columns) in enumerate(zip(model.estimators_, model.estimators_features_, strict=True)):
            tr = tree.tree_
            leaf = tr.children_left == -1
            own = np.arange(tr.node_count) + offset
            lefts.append(np.where(leaf, own, tr.children_left + offset))  # a leaf leads to itself
            rights.append(np.where(leaf, own, tr.children_right + offset))
            feats.append(np.where(leaf, 0, np.asarray(columns)[np.maximum(tr.feature, 0)]))
            thresholds.append(np.where(leaf, np.inf, tr.threshold))
            # scikit-learn's depth of a row ending in this leaf: the path to it, plus the average
            # path length of the samples left in it, less one
            values.append(model._decision_path_lengths[t] + model._average_path_length_per_tree[t] - 1.0)
            offset += tr.node_count
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(feats).astype(np.intp)
        self.threshold = np.concatenate(thresholds)
        self.value = np.concatenate(values)
        self.roots = np.cumsum([0] + [len(v) for v in values[:-1]]).astype(np.intp)
        self.depth = max(tree.tree_.max_depth for tree in model.estimators_)
        self.n_features = data.shape[1]
        self.denominator = len(values) * float(_average_path_length([model._max_samples])[0])

    def score(self, rows: np.ndarray) -> np.ndarray:
        n = len(rows)
        flat = np.ascontiguousarray(rows, dtype=np.float64).ravel()
        base = (np.arange(n) * self.n_features)[None, :]
        node = np.repeat(self.roots[:, None], n, axis=1)  # (trees, rows)
        for _ in range(self.depth):
            go_left = flat[base + self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        depths = self.value[node].sum(axis=0)
        return np.asarray(2.0 ** (-depths / self.denominator) if self.denominator else np.ones(n))


class Tails:
    """ECOD (``copula=False``) or COPOD (``copula=True``) over the sorted training values."""

    def __init__(self, data: np.ndarray, copula: bool = False) -> None:
        self.sorted = np.sort(data, axis=0).T.copy()  # (features, rows): one sorted column each
        self.n = data.shape[0]
        centred = data - data.mean(axis=0)
        self.skew = np.sign((centred**3).mean(axis=0))  # the sign of each feature's skewness
        self.copula = copula

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64)
        left = np.empty_like(rows)
        right = np.empty_like(rows)
        for j, column in enumerate(self.sorted):
            x = rows[:, j]
            order = np.argsort(x, kind="stable")  # sorted queries search a sorted column fastest
            xs = x[order]
            left[order, j] = np.searchsorted(column, xs, side="right")  # training values <= x
            right[order, j] = self.n - np.searchsorted(column, xs, side="left")  # ... >= x
        # the row counted in with the training values (as pyod scores a row among them): never 0
        u_left = -np.log((left + 1.0) / (self.n + 1.0))
        u_right = -np.log((right + 1.0) / (self.n + 1.0))
        u_skew = u_left * -np.sign(self.skew - 1) + u_right * np.sign(self.skew + 1)
        if self.copula:
            out = np.maximum(u_skew, (u_left + u_right) / 2)
        else:
            out = np.maximum(np.maximum(u_left, u_right), u_skew)
        return np.asarray(out.sum(axis=1))


class Histograms:
    """HBOS over each feature's training histogram (pyod's static mode)."""

    def __init__(self, data: np.ndarray, n_bins: int = 20, alpha: float = 0.1, tol: float = 0.5) -> None:
        self.n_bins, self.tol = n_bins, tol
        edges, logs = [], []
        for column in data.T:
            density, edge = np.histogram(column, bins=n_bins, density=True)
            edges.append(edge)
            logs.append(np.log2(density + alpha))
        self.edges = np.array(edges)  # (features, n_bins + 1)
        self.logs = np.array(logs)  # (features, n_bins)

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64)
        total = np.zeros(len(rows))
        for j, (edge, log) in enumerate(zip(self.edges, self.logs, strict=True)):
            x = rows[:, j]
            at = np.digitize(x, edge, right=True)  # 0: below the first edge; n_bins + 1: above the last
            per = log[np.clip(at - 1, 0, self.n_bins - 1)]
            first_w, last_w = edge[1] - edge[0], edge[-1] - edge[-2]
            far = ((at == 0) & (edge[0] - x > first_w * self.tol)) | (
                (at == self.n_bins + 1) & (x - edge[-1] > last_w * self.tol))
            per = np.where(far, log.min(), per)
            total -= per
        return total

"""The window ensemble's models score as pyod's do, from what their fit kept."""

from __future__ import annotations

import numpy as np
import pytest
from pyod.models.copod import COPOD
from pyod.models.ecod import ECOD
from pyod.models.hbos import HBOS
from pyod.models.iforest import IForest

from detectors.window_models import Forest, Histograms, Tails


@pytest.fixture(scope="module")
def window() -> np.ndarray:
    rng = np.random.default_rng(3)
    data = np.log1p(np.abs(rng.standard_normal((3000, 6)) * 5))
    data[:, 5] = np.round(data[:, 5])  # ties, as counts have
    return data


def test_forest_scores_as_pyod_iforest(window: np.ndarray) -> None:
    rows = window[:200] * 1.3
    ours = Forest(window, n_estimators=20, seed=5)
    theirs = IForest(n_estimators=20, random_state=5).fit(window)
    # pyod's score is scikit-learn's, offset: the same order, the same gaps
    assert np.allclose(ours.score(rows), theirs.decision_function(rows) - theirs.detector_.offset_)
    assert np.allclose(ours.train_scores, ours.score(window))


@pytest.mark.parametrize(("copula", "model"), [(False, ECOD), (True, COPOD)])
def test_tails_score_a_row_as_pyod_scores_it_among_the_training_rows(window: np.ndarray, copula: bool,
                                                                     model: type) -> None:
    theirs = model().fit(window)
    ours = Tails(window, copula=copula)
    # (pyod takes each feature's skewness over the training rows and the scored one: a row far out
    # can flip it, so the rows compared here are ones that do not; ours is the training window's)
    for row in (window[7:8] + 0.01, window[9:10] * 1.2, np.zeros((1, 6))):
        assert ours.score(row) == pytest.approx(theirs.decision_function(row))


def test_histograms_score_as_pyod_hbos(window: np.ndarray) -> None:
    rows = np.vstack([window[:100], window[:100] * 2, -window[:5]])  # inside, past the edges, far out
    assert np.allclose(Histograms(window).score(rows), HBOS(n_bins=20).fit(window).decision_function(rows))


@pytest.mark.parametrize("build", [lambda d: Forest(d, 10), Tails, lambda d: Tails(d, True), Histograms])
def test_scores_are_finite_and_deterministic_on_odd_input(build, window: np.ndarray) -> None:
    constant = np.zeros((50, 6))  # a window where nothing varies
    for data in (window, constant):
        model = build(data)
        rows = np.vstack([data[:3], np.full((1, 6), 1e9), np.zeros((1, 6))])
        first = model.score(rows)
        assert np.isfinite(first).all() and len(first) == len(rows)
        assert (build(data).score(rows) == first).all()

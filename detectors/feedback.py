"""Learning from analysts: verdicts on alerts re-weight the scores of similar transactions.

A transaction's *pattern* is what explains its score: each explanation term (feature, or
``rule:<name>`` for a named rule's evidence -> the evidence it added, signed), as one vector scaled
to unit length, so
the pattern of an aggregator's busy swap and that of a drain differ however large either is. A
verdict trains an online logistic regression (river's, without an intercept, so a verdict moves
only the patterns that share its terms): ``true_positive`` toward 1, ``false_positive`` toward 0
with ``dismiss_weight`` times the weight (a dismissal is an instruction: this pattern, not again;
and exploits share many terms with ordinary traffic, so confirmations alone would drown it).
Its output on a new transaction's pattern, ``w . x`` (the log-odds the analysts would confirm it),
squared (sign kept) so that a verdict reaches its own pattern fully and patterns that merely share
a term with it little, becomes a shift of the transaction's evidence, at most ``max_shift`` units down and ``max_raise``
up: a false positive on one aggregator's pattern lowers the same pattern on any contract, a
confirmed attack raises the ones like it a little (confirmations lift less than dismissals lower,
for the same reason), and an unlike transaction is left as it was. The shift is bounded, and
the engine never lowers a transaction on which a critical named rule holds (feedback alone does
not silence a critical rule). The model is part of the engine's state (snapshots), can be read
(:meth:`FeedbackModel.summary`) and reset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

VERDICTS = ("true_positive", "false_positive")
FEEDBACK_TERM = "analyst_feedback"  # the explanation term of a shift (not part of a pattern)
# the shift is the learned log-odds squared over FOCUS: one dismissal (log-odds -10 on its own
# pattern at the default rate and weight) moves its pattern the full ``max_shift``, and one that
# shares a term or two (cosine 0.35: log-odds -3.5) by half a unit
FOCUS = 25.0


def pattern(terms: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The unit-length pattern of a transaction's explanation ``terms`` (feature, contribution).

    >>> pattern([("reentries", 3.0), ("rule:reentrancy-drain", 1.0)])  # doctest: +ELLIPSIS
    {'reentries': 0.948..., 'rule:reentrancy-drain': 0.316...}
    """
    x: dict[str, float] = {}
    for feature, contribution in terms:
        if contribution and feature != FEEDBACK_TERM:
            x[feature] = x.get(feature, 0.0) + contribution
    norm = math.sqrt(sum(v * v for v in x.values()))
    return {k: v / norm for k, v in x.items()} if norm else {}


class FeedbackModel:
    """See the module docstring."""

    def __init__(self, learning_rate: float = 4.0, max_shift: float = 3.0, max_raise: float = 0.5,
                 dismiss_weight: float = 5.0) -> None:
        self.learning_rate = learning_rate
        self.max_shift = max_shift
        self.max_raise = max_raise
        self.dismiss_weight = dismiss_weight
        self.reset()

    def reset(self) -> None:
        """Forget every verdict learned."""
        from river import linear_model, optim  # (river is imported with the detectors; here lazily)

        self._model: Any = linear_model.LogisticRegression(optimizer=optim.SGD(self.learning_rate), intercept_lr=0.0)
        self.verdicts = {v: 0 for v in VERDICTS}

    @property
    def active(self) -> bool:
        return any(self.verdicts.values())

    def learn(self, x: dict[str, float], verdict: str) -> None:
        """Learn an analyst's ``verdict`` on the transaction whose pattern is ``x``."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        if x:
            confirmed = verdict == "true_positive"
            self._model.learn_one(x, confirmed, w=1.0 if confirmed else self.dismiss_weight)
        self.verdicts[verdict] += 1

    def shift(self, x: dict[str, float]) -> float:
        """The evidence to add to a transaction of pattern ``x``: in [-max_shift, max_raise]."""
        weights = self._model.weights
        logit = float(sum(v * weights.get(k, 0.0) for k, v in x.items()))
        return max(-self.max_shift, min(self.max_raise, logit * abs(logit) / FOCUS))

    def summary(self, top: int = 20) -> dict[str, Any]:
        """What was learned: the verdicts counted and the ``top`` weights by size (a pattern term with a
        negative weight is one the analysts called a false positive)."""
        weights = sorted(self._model.weights.items(), key=lambda kv: -abs(kv[1]))[:top]
        return {"verdicts": dict(self.verdicts), "learning_rate": self.learning_rate, "max_shift": self.max_shift,
                "max_raise": self.max_raise, "dismiss_weight": self.dismiss_weight,
                "weights": {k: round(v, 6) for k, v in weights}}

    def state(self) -> dict[str, Any]:
        return {"model": self._model, "verdicts": dict(self.verdicts)}

    def load_state(self, state: dict[str, Any]) -> None:
        self._model = state["model"]
        self.verdicts = dict(state["verdicts"])


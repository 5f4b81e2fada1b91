"""Measuring detection against labels, as ``../shared/data/README.md`` defines it.

Transactions (labels ``tx_hash,label,...``): ROC-AUC, average precision, recall at 1% and 0.1%
false-positive rate over the ordinary transactions, the share of labelled transactions ranked in
the top 3 of their block, and, given the alerts the configuration emitted, precision, recall and
false alerts per 1,000 ordinary transactions. Accounts (labels ``address,label``): each labelled
account's highest behaviour score in the replay, then ROC-AUC and recall at 5% FPR.

The metrics are implemented here (no scikit-learn at run time) and checked against scikit-learn
in the tests. Ties are handled as scikit-learn does (AUC counts a tie as half; AP steps over
distinct thresholds).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from ingest.errors import UserError


class EvaluationError(UserError, ValueError):
    """Inputs that cannot be evaluated (no labels matched, one class only, bad files)."""


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    pairs = sorted(zip(scores, labels, strict=True))
    pos = sum(labels)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        raise EvaluationError("ROC-AUC needs both labelled and ordinary items")
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2  # ranks i+1..j share their mean
        rank_sum += avg_rank * sum(lab for _, lab in pairs[i:j])
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Average precision: sum over thresholds of (recall step) x precision.

    >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
    0.8333
    """
    pos = sum(labels)
    if pos == 0:
        raise EvaluationError("average precision needs labelled items")
    order = sorted(range(len(scores)), key=lambda k: -scores[k])
    tp = fp = 0
    ap = 0.0
    prev_recall = 0.0
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and scores[order[j]] == scores[order[i]]:
            tp += labels[order[j]]
            fp += 1 - labels[order[j]]
            j += 1
        recall = tp / pos
        ap += (recall - prev_recall) * (tp / (tp + fp))
        prev_recall = recall
        i = j
    return ap


def recall_at_fpr(labels: Sequence[int], scores: Sequence[float], fpr: float) -> float:
    """Share of labelled items scored strictly above the threshold that lets at most ``fpr`` of
    the ordinary ones through (the ordinary score at that quantile)."""
    neg = sorted((s for s, lab in zip(scores, labels, strict=True) if not lab), reverse=True)
    pos = [s for s, lab in zip(scores, labels, strict=True) if lab]
    if not neg or not pos:
        raise EvaluationError("recall at FPR needs both labelled and ordinary items")
    allowed = int(fpr * len(neg))  # ordinary items allowed above the threshold
    threshold = neg[allowed] if allowed < len(neg) else float("-inf")
    return sum(1 for s in pos if s > threshold) / len(pos)


def read_labels(path: str | Path, extra: dict[str, dict[str, str]] | None = None) -> tuple[str, dict[str, int]]:
    """('tx' or 'account', {key: label}) from a labels CSV; ``extra``, if given, receives each
    key's other columns (an incident's name and date, say)."""
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            key = "tx_hash" if "tx_hash" in fields else "address" if "address" in fields else None
            if key is None or "label" not in fields:
                raise EvaluationError(f"{path}: expected columns tx_hash,label or address,label")
            labels = {}
            for lineno, row in enumerate(reader, 2):
                k = (row[key] or "").lower()
                try:
                    labels[k] = int(row["label"])
                except (TypeError, ValueError):
                    raise EvaluationError(f"{path}:{lineno}: label {row['label']!r} is not 0 or 1") from None
                if extra is not None:
                    extra[k] = {c: v for c, v in row.items() if c not in (key, "label") and c is not None and v}
    except OSError as err:
        raise EvaluationError(f"cannot read labels {path}: {err.strerror}") from None
    return ("tx" if key == "tx_hash" else "account"), labels


def read_jsonl(path: str | Path) -> Iterable[dict[str, Any]]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as err:
        raise EvaluationError(f"cannot read {path}: {err.strerror}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise EvaluationError(f"{path}:{lineno}: not JSON") from None


def _check_coverage(seen: int, labelled: int, what: str) -> None:
    """Metrics over labels the scores mostly lack measure nothing (scores of other data, or
    transaction scores against account labels): refuse them rather than print ROC-AUC 0.5."""
    if seen < labelled / 2:
        raise EvaluationError(f"only {seen} of the {labelled} labelled {what} appear in the scores: "
                              "are these scores of the data the labels describe?")


def evaluate_transactions(scores: list[dict[str, Any]], labels: dict[str, int],
                          alerts: list[dict[str, Any]] | None = None, resamples: int = 0,
                          seed: int = 0) -> dict[str, Any]:
    rows = [(labels[s["tx_hash"]], float(s["score"]), s.get("block_number")) for s in scores if s["tx_hash"] in labels]
    if not rows:
        raise EvaluationError("no scored transaction has a label: wrong labels file?")
    _check_coverage(len(rows), len(labels), "transactions")
    y = [r[0] for r in rows]
    x = [r[1] for r in rows]
    by_block: dict[Any, list[float]] = defaultdict(list)
    ordinary_in: dict[Any, list[float]] = defaultdict(list)
    labelled_in: dict[Any, int] = defaultdict(int)
    for lab, s, b in rows:
        by_block[b].append(s)
        if lab:
            labelled_in[b] += 1
        else:
            ordinary_in[b].append(s)
    # top 3 of its block among all its transactions (the data README's metric; where several
    # exploits share a block, at most 3 of them can be), and among the ordinary ones only
    top3 = [_top3_chance(s, by_block[b], True) for lab, s, b in rows if lab]
    top3_ordinary = [_top3_chance(s, ordinary_in[b], False) for lab, s, b in rows if lab]
    top3_ceiling = sum(min(3, n) for n in labelled_in.values()) / max(1, sum(labelled_in.values()))
    out: dict[str, Any] = {
        "kind": "transactions", "transactions": len(rows), "labelled": sum(y),
        "roc_auc": round(roc_auc(y, x), 4), "average_precision": round(average_precision(y, x), 4),
        "recall_at_1pct_fpr": round(recall_at_fpr(y, x, 0.01), 4),
        "recall_at_0.1pct_fpr": round(recall_at_fpr(y, x, 0.001), 4),
        "top3_in_block": round(sum(top3) / len(top3), 4),
        "top3_in_block_best_possible": round(top3_ceiling, 4),
        "top3_in_block_among_ordinary": round(sum(top3_ordinary) / len(top3_ordinary), 4),
    }
    if resamples:
        out["confidence_95"] = bootstrap(y, x, _TX_METRICS, resamples, seed,
                                         {"top3_in_block": top3, "top3_in_block_among_ordinary": top3_ordinary})
    if alerts is not None:
        alerted = _alerted(alerts)
        tp = sum(1 for h, lab in labels.items() if lab and h in alerted)
        fp = sum(1 for h in alerted if labels.get(h) == 0)
        ordinary = len(y) - sum(y)
        out["alerts"] = {
            "alerted_transactions": len(alerted),
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / sum(y), 4),
            "false_alerts_per_1000": round(1000 * fp / ordinary, 3) if ordinary else None,
        }
    return out


def bootstrap(labels: Sequence[int], scores: Sequence[float], metrics: dict[str, Any], resamples: int,
              seed: int = 0, per_positive: dict[str, Sequence[float]] | None = None) -> dict[str, Any]:
    """95% confidence intervals of ``metrics`` (name -> function of (labels, scores)) by a
    stratified bootstrap: each resample draws as many labelled and as many ordinary items as there
    are, with replacement, so every resample has both classes in the same numbers; the interval
    is the 2.5th and 97.5th percentiles of the resampled values. ``per_positive``: metrics that
    are a mean over the labelled items of a value each has (the top-3 share), resampled with them.
    Deterministic for a seed.

    With 46 exploits, one exploit moves recall by 0.022: a difference between two configurations
    smaller than the interval is not evidence that either is better.

    >>> ci = bootstrap([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], {"roc_auc": roc_auc}, 200)
    >>> ci["roc_auc"], ci["resamples"]
    ([1.0, 1.0], 200)
    """
    import random

    if resamples < 1:
        raise EvaluationError("bootstrap needs at least one resample")
    rng = random.Random(seed)
    pos = [s for s, lab in zip(scores, labels, strict=True) if lab]
    neg = [s for s, lab in zip(scores, labels, strict=True) if not lab]
    if not pos or not neg:
        raise EvaluationError("bootstrap needs both labelled and ordinary items")
    n_pos, n_neg = len(pos), len(neg)
    y = [1] * n_pos + [0] * n_neg
    values: dict[str, list[float]] = {name: [] for name in (*metrics, *(per_positive or {}))}
    for _ in range(resamples):
        pick = [rng.randrange(n_pos) for _ in range(n_pos)]
        x = [pos[i] for i in pick] + [neg[rng.randrange(n_neg)] for _ in range(n_neg)]
        for name, fn in metrics.items():
            values[name].append(fn(y, x))
        for name, per in (per_positive or {}).items():
            values[name].append(sum(per[i] for i in pick) / n_pos)
    out: dict[str, Any] = {"method": "stratified bootstrap, percentile", "resamples": resamples, "seed": seed}
    for name, vals in values.items():
        vals.sort()
        out[name] = [round(vals[int(0.025 * (resamples - 1))], 4), round(vals[round(0.975 * (resamples - 1))], 4)]
    return out


def _top3_chance(score: float, others: list[float], includes_self: bool) -> float:
    """The chance that a transaction scoring ``score`` ranks in the top 3 of ``others`` (its
    block's scores, itself included when ``includes_self``) when tied scores are ordered at random:
    1 or 0 without ties; with ties, the share of the tied places that fall within the top 3. (A
    constant scorer puts every exploit in the top 3 when ties count in its favour.)

    >>> _top3_chance(0.5, [0.9, 0.5, 0.5, 0.5, 0.1], True), _top3_chance(0.5, [0.9, 0.8, 0.7, 0.5], True)
    (0.666667, 0.0)
    """
    above = tied = 0
    for o in others:
        if o > score:
            above += 1
        elif o == score:
            tied += 1
    if includes_self:
        tied -= 1
    return round(max(0, min(tied + 1, 3 - above)) / (tied + 1), 6)


def _best_wallet_scores(scores: list[dict[str, Any]], labels: dict[str, int]) -> dict[str, float]:
    """Each labelled address's highest behaviour score in the replay (addresses never seen: absent)."""
    best: dict[str, float] = {}
    for s in scores:
        for address, value in (s.get("wallets") or {}).items():
            if address in labels and value > best.get(address, -1.0):
                best[address] = value
    return best


def _alerted(alerts: list[dict[str, Any]]) -> set[str]:
    """The transactions with an alert about them (a wallet's names none) that was not retracted."""
    return {a["tx_hash"] for a in alerts if a.get("tx_hash") and a.get("status") != "retracted"}


def _alerted_wallets(alerts: list[dict[str, Any]]) -> set[str]:
    """The wallets with a behaviour alert that was not retracted."""
    return {a["addresses"][-1].lower() for a in alerts
            if a.get("detector") == "wallet" and a.get("addresses") and a.get("status") != "retracted"}


def evaluate_accounts(scores: list[dict[str, Any]], labels: dict[str, int], resamples: int = 0,
                      seed: int = 0, alerts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    best = _best_wallet_scores(scores, labels)
    if not best:
        raise EvaluationError("no scored address has a label: wrong labels file?")
    _check_coverage(len(best), len(labels), "addresses")
    y = [labels[a] for a in labels]
    x = [best.get(a, 0.0) for a in labels]
    out: dict[str, Any] = {
        "kind": "accounts", "accounts": len(labels), "seen": len(best), "labelled": sum(y),
        "roc_auc": round(roc_auc(y, x), 4), "recall_at_5pct_fpr": round(recall_at_fpr(y, x, 0.05), 4),
    }
    if resamples:
        out["confidence_95"] = bootstrap(y, x, _ACCOUNT_METRICS, resamples, seed)
    if alerts is not None:
        alerted = _alerted_wallets(alerts)
        positives = sum(y)
        out["alerts"] = {
            "alerted_accounts": len(alerted),
            "labelled_alerted": round(sum(1 for a, lab in labels.items() if lab and a in alerted) / positives, 4),
            "ordinary_alerted": round(sum(1 for a, lab in labels.items() if not lab and a in alerted)
                                      / (len(y) - positives), 4),
        }
    return out


_TX_METRICS: dict[str, Any] = {
    "roc_auc": roc_auc, "average_precision": average_precision,
    "recall_at_1pct_fpr": lambda y, x: recall_at_fpr(y, x, 0.01),
    "recall_at_0.1pct_fpr": lambda y, x: recall_at_fpr(y, x, 0.001),
}
_ACCOUNT_METRICS: dict[str, Any] = {"roc_auc": roc_auc, "recall_at_5pct_fpr": lambda y, x: recall_at_fpr(y, x, 0.05)}


def details(scores: list[dict[str, Any]], labels: dict[str, int], kind: str, top: int,
            extra: dict[str, dict[str, str]] | None = None,
            alerts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Where each labelled item landed, and the ``top`` highest-scored ordinary items: every
    positive with its score, its rank among all scored items (1 = highest; ties share the best
    rank), for transactions its rank in its block and whether it alerted, with the label file's
    other columns; then the ordinary items that outrank the most positives (the false alarms to
    read first)."""
    extra = extra or {}
    if kind == "tx":
        items = [(s["tx_hash"], float(s["score"]), s.get("block_number")) for s in scores if s["tx_hash"] in labels]
    else:
        best = _best_wallet_scores(scores, labels)
        items = [(a, best.get(a, 0.0), None) for a in labels]
    ordered = sorted((x for _, x, _ in items), reverse=True)
    rank: dict[float, int] = {}
    for i, x in enumerate(ordered, 1):
        rank.setdefault(x, i)
    in_block: dict[Any, list[float]] = defaultdict(list)
    for _, x, b in items:
        in_block[b].append(x)
    alerted = _alerted(alerts) if alerts is not None else None
    name = "tx_hash" if kind == "tx" else "address"

    def row(key: str, x: float, b: Any) -> dict[str, Any]:
        r: dict[str, Any] = {name: key, "score": x, "rank": rank[x]}
        if kind == "tx":
            r["block_number"] = b
            r["rank_in_block"] = 1 + sum(1 for o in in_block[b] if o > x)
            if alerted is not None:
                r["alerted"] = key in alerted
        r.update(extra.get(key, {}))
        return r

    by_score = sorted(items, key=lambda t: (-t[1], t[0]))
    return {"positives": [row(*t) for t in by_score if labels[t[0]]],
            "top_ordinary": [row(*t) for t in by_score if not labels[t[0]]][:top]}


def plot(scores: list[dict[str, Any]], labels: dict[str, int], kind: str, path: str | Path) -> None:
    """Precision-recall curve and score timeline (labelled items marked), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    if kind == "tx":
        pts = [(float(s["score"]), labels.get(s["tx_hash"], 0)) for s in scores if s["tx_hash"] in labels]
    else:
        best = _best_wallet_scores(scores, labels)
        pts = [(best.get(a, 0.0), lab) for a, lab in labels.items()]
    pos = sum(lab for _, lab in pts)
    ordered = sorted(pts, key=lambda p: -p[0])
    tp = fp = 0
    prec, rec = [], []
    for _, lab in ordered:
        tp += lab
        fp += 1 - lab
        prec.append(tp / (tp + fp))
        rec.append(tp / pos if pos else 0.0)
    ax1.plot(rec, prec, color="tab:blue")
    ax1.set_xlabel("recall")
    ax1.set_ylabel("precision")
    ax1.set_xlim(0, 1.01)
    ax1.set_ylim(0, 1.05)
    ax1.set_title(f"precision-recall ({'transactions' if kind == 'tx' else 'accounts'}, {pos} labelled)")
    ax1.grid(alpha=0.3)
    if kind == "tx":
        idx = range(len(pts))
        ax2.scatter([i for i in idx if not pts[i][1]], [pts[i][0] for i in idx if not pts[i][1]], s=3,
                    color="0.6", label="ordinary")
        ax2.scatter([i for i in idx if pts[i][1]], [pts[i][0] for i in idx if pts[i][1]], s=28, color="tab:red",
                    marker="x", label="labelled (exploit)")
        ax2.set_xlabel("transaction (replay order)")
        ax2.set_title("score timeline")
    else:
        ax2.hist([p[0] for p in pts if not p[1]], bins=40, alpha=0.6, color="0.5", label="ordinary accounts")
        ax2.hist([p[0] for p in pts if p[1]], bins=40, alpha=0.6, color="tab:red", label="labelled (phishing)")
        ax2.set_xlabel("highest behaviour score")
        ax2.set_title("behaviour score distribution")
    ax2.set_ylabel("score" if kind == "tx" else "accounts")
    ax2.legend(loc="best")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate(scores_path: str | Path, labels_path: str | Path, alerts_path: str | Path | None = None,
             plot_path: str | Path | None = None, details_top: int | None = None, resamples: int = 0,
             seed: int = 0) -> dict[str, Any]:
    """The metrics; with ``details_top``, also :func:`details` (that many ordinary items); with
    ``resamples``, 95% confidence intervals (:func:`bootstrap`)."""
    extra: dict[str, dict[str, str]] = {}
    kind, labels = read_labels(labels_path, extra)
    scores = list(read_jsonl(scores_path))
    alerts = list(read_jsonl(alerts_path)) if alerts_path else None
    result = (evaluate_transactions(scores, labels, alerts, resamples, seed) if kind == "tx"
              else evaluate_accounts(scores, labels, resamples, seed, alerts))
    if details_top is not None:
        result["details"] = details(scores, labels, kind, details_top, extra, alerts)
    if plot_path is not None:
        plot(scores, labels, kind, plot_path)
        result["plot"] = str(plot_path)
    return result

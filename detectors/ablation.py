"""Ablation: what each detector adds, measured by replaying the same history without it.

The configured engine replays the sources once as configured and once with each of its detectors
removed in turn (the ``shape`` detector is the rule file's evidence and named rules as a whole);
every run is scored against the same labels, so the metrics can be read side by side. A detector
whose removal changes nothing adds nothing on that data.

``warm``: history each run's engine learns from first (replayed, not scored), as a service started
from a snapshot (``replay HISTORY --snapshot-out S``, then ``--snapshot-in S``) has learned it: what
the learned detectors add once they know a chain's normal, against what they add cold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ingest import FileBlockSource

from .engine import ScoringEngine
from .evaluate import evaluate_accounts, evaluate_transactions, read_labels
from .settings import EngineConfig

# the metrics a table shows, by labels kind (the JSON has them all)
COLUMNS = {
    "tx": ("average_precision", "roc_auc", "recall_at_0.1pct_fpr", "top3_in_block_among_ordinary",
           "alerts.recall", "alerts.false_alerts_per_1000", "alerts.alerted_transactions"),
    "account": ("roc_auc", "recall_at_5pct_fpr", "alerts.labelled_alerted", "alerts.ordinary_alerted"),
}


def replay_once(sources: Sequence[Path], config: EngineConfig, warm: Sequence[Path] = (),
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(score lines, alerts) of one replay of ``sources`` under ``config``, after the engine learned
    from ``warm``; each finding is an alert."""
    engine = ScoringEngine(config)
    if warm:
        for block in FileBlockSource(list(warm)):
            engine.score_block(block)  # learned from, not scored
    scores: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for block in FileBlockSource(list(sources)):
        for s in engine.score_block(block):
            scores.append(s.to_json())
            for f in s.findings():
                alerts.append({"tx_hash": None if f.subject else s.tx_hash, "status": "firing",
                               "detector": f.detector, "addresses": f.addresses})
    return scores, alerts


def ablate(sources: Sequence[Path], labels_path: Path, config: EngineConfig | None = None,
           warm: Sequence[Path] = ()) -> dict[str, Any]:
    """The metrics of the configured run and of each run without one detector (each warmed on
    ``warm`` first, when given)."""
    config = config or EngineConfig()
    kind, labels = read_labels(labels_path)
    runs: list[dict[str, Any]] = []
    variants: list[tuple[str | None, EngineConfig]] = [(None, config)]
    for name in config.detectors:
        rest = tuple(d for d in config.detectors if d != name)
        variants.append((name, dataclasses.replace(config, detectors=rest)))
    for without, cfg in variants:
        if not cfg.detectors:
            continue
        scores, alerts = replay_once(sources, cfg, warm)
        metrics = (evaluate_transactions(scores, labels, alerts) if kind == "tx"
                   else evaluate_accounts(scores, labels, alerts=alerts))
        runs.append({"without": without, "detectors": list(cfg.detectors), **metrics})
    return {"kind": "ablation", "labels": kind, "warm": [str(p) for p in warm], "runs": runs}


def table(result: dict[str, Any]) -> str:
    """The runs side by side, a metric a row, as plain text."""
    columns = COLUMNS[result["labels"]]
    heads = ["all" if r["without"] is None else f"without {r['without']}" for r in result["runs"]]
    width = max(len(c) for c in columns) + 2
    lines = ["".ljust(width) + "".join(h.rjust(16) for h in heads)]
    for column in columns:
        cells = []
        for run in result["runs"]:
            value: Any = run.get(column)
            if value is None and "." in column:  # alerts.recall: a field of the alerts metrics
                head, _, field = column.partition(".")
                value = (run.get(head) or {}).get(field)
            cells.append(("-" if value is None else f"{value:g}").rjust(16))
        lines.append(column.ljust(width) + "".join(cells))
    return "\n".join(lines)

"""The engine's configuration: which detectors run, their hyperparameters and fusion weights, and
how findings are decided. Every value is explicit (seeds included), so a snapshot can record it
and refuse to resume under another one. ``chainsentry/config.py`` builds it from the ``detectors:``
section of the config file (see the README's configuration reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_DETECTORS = ("shape", "hst", "pyod", "baseline")


@dataclass(frozen=True)
class EngineConfig:
    """See the module docstring."""

    seed: int = 42
    detectors: tuple[str, ...] = DEFAULT_DETECTORS  # those on, by name (detectors.registry)
    alert_threshold: float = 0.78  # fused score that alerts alone (<= 1 false alert per 1,000 on dev)
    rule_min_severity: str = "high"
    rule_min_score: float = 0.75  # a named rule alerts when the fused score corroborates it
    weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(DEFAULT_DETECTORS, 1.0))
    fusion_scale: float = 4.0
    hst_trees: int = 10
    hst_height: int = 6
    hst_window: int = 250
    pyod_window: int = 5000
    pyod_refit_every: int = 2500
    pyod_min_fit: int = 2000
    baseline_min_history: int = 10
    baseline_max_addresses: int = 50_000
    feedback_learning_rate: float = 4.0  # analysts' verdicts: how far one moves its pattern (detectors.feedback)
    feedback_max_shift: float = 3.0  # the most evidence verdicts take away
    feedback_max_raise: float = 0.5  # the most evidence verdicts add
    feedback_dismiss_weight: float = 5.0  # a false-positive verdict counts this many confirmations
    deterministic_refit: bool = True  # False in the live service: never wait on a refit
    calibration_window: int = 5000
    calibration_min_history: int = 200
    max_entities: int = 200_000
    max_wallets: int = 200_000
    wallet_threshold: float = 0.475  # wallet behaviour score that alerts (about 1 ordinary account in 100 on dev)
    wallet_min_watch: float = 7 * 86400  # chain seconds the stream watches before wallet behaviour alerts
    wallet_cooldown: float = 7 * 86400  # chain seconds between two alerts about one wallet
    deployment_threshold: float | None = 3.0  # evidence that a created contract is an attack contract (None: off)
    rules_path: str | None = None  # a rule file in place of the built-in one
    rules_files: tuple[str, ...] = ()  # the user's rule files, beside the built-in one
    unit_modules: tuple[str, ...] = ()  # the user's feature unit modules (imported by whoever builds the config)
    # per named rule: (name, enabled, severity or None, min_score or None)
    rule_overrides: tuple[tuple[str, bool, str | None, float | None], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON values (tuples as lists), as a snapshot records it."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EngineConfig:
        """The inverse of :meth:`to_json`; ``TypeError`` for a key this build does not know."""
        values = dict(doc)
        for key in ("detectors", "rules_files", "unit_modules"):
            if key in values:
                values[key] = tuple(values[key])
        if "rule_overrides" in values:
            values["rule_overrides"] = tuple(tuple(o) for o in values["rule_overrides"])
        return cls(**values)

"""The detectors the engine can run, by name: the one place a detector is registered.

Each entry builds a detector from the engine's configuration and rule set. The engine builds those
``EngineConfig.detectors`` names, in that order, and loops over them; nothing else names a
detector. To add one: write a class keeping the protocol in :mod:`.base` (the contract suite in
``tests/test_detector_contract.py`` runs over every entry here), register it below, give it a
fusion weight, and measure what it adds with ``chainsentry evaluate --ablate``.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Detector
from .baseline import BaselineDetector
from .online import HSTDetector
from .rules import RuleSet, ShapeDetector
from .settings import EngineConfig
from .window import PyodWindowDetector


def _shape(cfg: EngineConfig, rules: RuleSet) -> Detector:
    return ShapeDetector(rules)


def _hst(cfg: EngineConfig, rules: RuleSet) -> Detector:
    return HSTDetector(n_trees=cfg.hst_trees, height=cfg.hst_height, window_size=cfg.hst_window, seed=cfg.seed)


def _pyod(cfg: EngineConfig, rules: RuleSet) -> Detector:
    return PyodWindowDetector(window=cfg.pyod_window, refit_every=cfg.pyod_refit_every, min_fit=cfg.pyod_min_fit,
                              seed=cfg.seed, wait_for_fit=cfg.deterministic_refit)


def _baseline(cfg: EngineConfig, rules: RuleSet) -> Detector:
    return BaselineDetector(min_history=cfg.baseline_min_history, max_addresses=cfg.baseline_max_addresses)


DETECTORS: dict[str, Callable[[EngineConfig, RuleSet], Detector]] = {
    "shape": _shape,  # the rule file's evidence terms and named rules
    "hst": _hst,  # river HalfSpaceTrees over the call-tree shape
    "pyod": _pyod,  # a pyod ensemble refitted on a sliding window
    "baseline": _baseline,  # per-address behaviour baselines: outflows and call trees against their history
}


def build_detectors(cfg: EngineConfig, rules: RuleSet) -> list[Detector]:
    """The detectors ``cfg`` turns on, in its order; an unknown name is a ``ValueError``."""
    unknown = [name for name in cfg.detectors if name not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector {unknown[0]!r} (known: {', '.join(DETECTORS)})")
    return [DETECTORS[name](cfg, rules) for name in cfg.detectors]

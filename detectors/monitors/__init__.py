"""User-defined monitors: a team's own contracts watched for the calls, events, value flows and
anomalies it names, with conditions in a small safe expression language (:mod:`.expr`) over
ABI-decoded arguments (:mod:`.abi`). Monitors read only ``ingest`` events and the detectors'
scores; their findings go to the alert stage like any detector's."""

from .abi import BUILTIN, Abi, AbiError, load_abi
from .expr import EvalError, ExprError, evaluate, parse
from .monitor import Match, Monitor, MonitorError
from .spec import MonitorSpec
from .watch import MonitorSet

__all__ = ["BUILTIN", "Abi", "AbiError", "EvalError", "ExprError", "Match", "Monitor", "MonitorError", "MonitorSet",
           "MonitorSpec", "evaluate", "load_abi", "parse"]

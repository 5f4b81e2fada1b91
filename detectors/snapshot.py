"""Detector state snapshots: a restart keeps what was learned.

A snapshot is a pickle of the engine's learned state behind a small JSON header naming the format,
its version, the feature list and the engine config. Loading refuses, with a clear message, a file
of another format, another version or another feature list, rather than misreading it. Snapshots
are for the operator's own files: like any pickle, load only files you wrote.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Protocol

import orjson

from ingest.errors import UserError

from .engine import EngineConfig, ScoringEngine
from .features import feature_names
from .online import HST_FEATURES
from .window import WINDOW_FEATURES

FORMAT = "chainsentry-detectors"
VERSION = 3  # 3: state per configured detector, the window models as arrays
# the features the learned models read (the tree model's and the pyod window's, in order): a
# snapshot is refused when these differ; features only the rules read can come and go
MODEL_FEATURES = {"hst": [name for name, _ in HST_FEATURES], "window": list(WINDOW_FEATURES)}


class Stateful(Protocol):
    """What a snapshot saves: an engine, or an engine of shards."""

    @property
    def config(self) -> EngineConfig: ...

    @property
    def scored(self) -> int: ...

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


class SnapshotError(UserError, ValueError):
    """A snapshot that cannot be used here."""


def snapshot_bytes(engine: Stateful) -> bytes:
    """The snapshot as bytes (a file's content, or a Kafka state message)."""
    header = {"format": FORMAT, "version": VERSION, "features": list(feature_names()), "model_features": MODEL_FEATURES,
              "config": engine.config.to_json(), "scored": engine.scored}
    return orjson.dumps(header) + b"\n" + pickle.dumps(engine.state(), protocol=pickle.HIGHEST_PROTOCOL)


def load_snapshot_bytes(engine: Stateful, data: bytes, where: str) -> None:
    """Load a snapshot held in memory (``where`` names it in errors)."""
    line, _, body = data.partition(b"\n")
    header = _check_header(line, where)
    _check_config(header, engine.config, where)
    try:
        state = pickle.loads(body)
    except Exception as err:
        raise SnapshotError(f"{where} is damaged: {err}") from None
    _load_state(engine, state, where)


def _check_config(header: dict[str, Any], config: EngineConfig, where: str) -> None:
    """Refuse a snapshot written under another detector configuration, naming what differs."""
    theirs, ours = header.get("config"), config.to_json()
    if not isinstance(theirs, dict):
        raise SnapshotError(f"{where} records no detector configuration")
    # whether refits are waited for is how the engine runs (live or replay), not what it learned
    theirs, ours = {**theirs, "deterministic_refit": None}, {**ours, "deterministic_refit": None}
    if theirs == ours:
        return
    diff = [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
    shown = ", ".join(f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in diff[:3])
    raise SnapshotError(f"{where} was written with another detector configuration ({shown}); "
                        "resume with the same detectors settings, or start without the snapshot")


def _load_state(engine: Stateful, state: Any, where: str) -> None:
    try:
        engine.load_state(state)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise SnapshotError(f"{where} does not hold this engine's state ({type(err).__name__}: {err})") from None


def save_snapshot(engine: Stateful, path: str | os.PathLike[str]) -> None:
    data = snapshot_bytes(engine)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)


def read_header(path: str | os.PathLike[str]) -> dict[str, object]:
    try:
        with open(path, "rb") as fh:
            line = fh.readline()
    except OSError as err:
        raise SnapshotError(f"cannot read snapshot {path}: {err.strerror}") from None
    return _check_header(line, str(path))


def _check_header(line: bytes, path: str) -> dict[str, object]:
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise SnapshotError(f"{path} is not a chainsentry detector snapshot") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a chainsentry detector snapshot")
    if header.get("version") != VERSION:
        raise SnapshotError(f"{path} is snapshot version {header.get('version')}; this build reads version {VERSION}")
    model = header.get("model_features")
    if model is None:  # written before model_features were recorded: its models read the same names?
        names = header.get("features")
        compatible = isinstance(names, list) and all(n in names for v in MODEL_FEATURES.values() for n in v)
    else:
        compatible = model == MODEL_FEATURES
    if not compatible:
        raise SnapshotError(f"{path} was written with models of other features; it cannot be used with this build")
    return header


def load_snapshot(engine: Stateful, path: str | os.PathLike[str]) -> None:
    """Load learned state into ``engine`` (built with the same config), or raise SnapshotError."""
    header = read_header(path)
    _check_config(header, engine.config, str(path))
    with open(path, "rb") as fh:
        fh.readline()
        try:
            state = pickle.load(fh)
        except Exception as err:
            raise SnapshotError(f"{path} is damaged: {err}") from None
    _load_state(engine, state, str(path))


def engine_from_snapshot(path: str | os.PathLike[str]) -> ScoringEngine:
    header = read_header(path)
    cfg = header.get("config")
    try:
        config = EngineConfig.from_json(cfg)  # type: ignore[arg-type]
    except TypeError as err:
        raise SnapshotError(f"{path} was written with a detector configuration this build lacks ({err})") from None
    engine = ScoringEngine(config)
    load_snapshot(engine, path)
    return engine

"""Configuration: typed, validated at start-up, unknown keys refused with a suggestion.

Precedence, lowest first: built-in defaults, the config file (YAML or JSON, ``--config``),
environment variables ``CHAINSENTRY_<SECTION>__<KEY>`` (for example ``CHAINSENTRY_INGEST__TRACES=off``;
top-level keys as ``CHAINSENTRY_RPC``), then command-line flags.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from alerts.responses import ResponseSpec
from detectors.monitors import Monitor, MonitorError, MonitorSpec
from detectors.monitors.abi import BUILTIN
from detectors.settings import EngineConfig
from ingest.errors import UserError


class ConfigError(UserError):
    """The configuration is invalid; the message says where and how."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RpcSettings(_Strict):
    timeout: float = Field(15.0, gt=0, description="seconds per HTTP request")
    attempts: int = Field(6, ge=1, description="tries per request on transient errors")
    backoff: float = Field(0.2, gt=0, description="first retry delay, doubled each time, with jitter")
    backoff_max: float = Field(8.0, gt=0, description="longest retry delay, seconds")
    max_batch: int = Field(200, ge=1, description="JSON-RPC calls per HTTP batch")


class IngestSettings(_Strict):
    traces: Literal["auto", "debug", "parity", "off"] = Field(
        "auto", description="call traces: debug_traceBlockByNumber, trace_block, or none (auto: what the node has)")
    receipts: bool = Field(True, description="fetch receipts (status, logs, gas used)")
    confirmations: int = Field(0, ge=0, description="blocks deep before an alert is confirmed (0: at once)")
    batch_size: int = Field(20, ge=1, le=1000, description="blocks per fetch while catching up")
    poll_interval: float = Field(1.0, gt=0, description="seconds between head polls without a WebSocket")
    start_block: int | None = Field(None, ge=0, description="first block when there is no checkpoint; default head")
    mempool: bool = Field(True, description="follow pending transactions (alerts at stage pending)")
    trace_pending: bool = Field(False, description="simulate each pending tx with debug_traceCall (heavy)")
    pending_ttl: float = Field(900.0, gt=0, description="seconds before an unmined pending tx counts as dropped")
    max_pending: int = Field(200_000, ge=1, description="pending transactions tracked at most; the oldest go")


class KafkaSettings(_Strict):
    bootstrap: str = Field("127.0.0.1:9092", description="HOST:PORT[,HOST:PORT...] (env CHAINSENTRY_KAFKA_BOOTSTRAP)")
    topic_prefix: str = Field("chainsentry", pattern=r"^[A-Za-z0-9._-]+$",
                              description="topics are <prefix>.<chain>.calls|findings|alerts|state|dead")
    group_prefix: str = Field("chainsentry", description="consumer groups are <prefix>.<chain>.<role>")
    snapshot_every: float = Field(5.0, gt=0, description="seconds between partition state checkpoints")
    batch_txs: int = Field(2000, ge=1, description="replay: transactions per message and partition, at most")
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024, description="largest Kafka message")
    setup_wait: float = Field(120.0, ge=0, description="seconds a role or a Kafka replay waits for an unreachable "
                              "broker while it sets up before it exits (code 2); a broker lost later is waited for")


class TransportSettings(_Strict):
    kind: Literal["inprocess", "kafka"] = Field(
        "inprocess", description="inprocess: one process; kafka: the stream over a broker (scale-out roles)")
    queue_size: int = Field(10_000, ge=1, description="bounded queue; producers wait when it is full")
    partitions: int = Field(1, ge=1, le=1024, description="state shards (Kafka partitions of the calls topic); "
                            "the in-process transport shards the same way, so both score alike")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)


SEVERITY = Literal["info", "low", "medium", "high", "critical"]


class _DetectorSwitch(_Strict):
    enabled: bool = Field(True, description="run this detector")
    weight: float = Field(1.0, ge=0, le=100, description="evidence units a full surprise (or raw evidence) is worth")


class ShapeSettings(_DetectorSwitch):
    """The rule file's evidence terms and named rules."""


class HstSettings(_DetectorSwitch):
    """river HalfSpaceTrees over the call-tree shape."""

    trees: int = Field(10, ge=1, le=200, description="trees in the forest")
    height: int = Field(6, ge=1, le=20, description="depth of each tree")
    window: int = Field(250, ge=10, description="transactions per reference window; cold until the first is full")


class PyodSettings(_DetectorSwitch):
    """The pyod ensemble refitted on a sliding window."""

    window: int = Field(5000, ge=50, description="traced transactions the ensemble is fitted on")
    refit_every: int = Field(2500, ge=10, description="traced transactions between refits")
    min_fit: int = Field(2000, ge=10, description="traced transactions before the first fit")


class BaselineSettings(_DetectorSwitch):
    """Per-address behaviour baselines learned from the stream (outflows and call trees)."""

    min_history: int = Field(10, ge=1, description="transactions an address is seen in before it is compared")
    max_addresses: int = Field(50_000, ge=100, description="baselines kept (LRU; ~0.6 KB typical, ~9 KB at most each)")


class WalletAlertSettings(_Strict):
    """Wallet behaviour alerts (``scam``: a wallet that behaves like a scam collection account)."""

    threshold: float = Field(0.475, gt=0, le=2, description="wallet behaviour score that alerts (2: never)")
    min_watch_days: float = Field(7.0, ge=0, description="chain days the stream watches before wallets alert "
                                  "(a short busy life means nothing in a stream an hour old)")
    cooldown_days: float = Field(7.0, ge=0, description="chain days between two alerts about one wallet")


class DeploymentSettings(_Strict):
    """Early warning on contract creations (``detectors/deployment.py``)."""

    enabled: bool = True
    threshold: float = Field(3.0, gt=0, description="evidence (signs of an attack contract) that alerts")


class FeedbackSettings(_Strict):
    """Analysts' verdicts (``POST /alerts/{id}/feedback``) re-weighting similar transactions."""

    learning_rate: float = Field(4.0, ge=0, le=100, description="how far one verdict moves its pattern's score")
    max_shift: float = Field(3.0, ge=0, le=20, description="the most evidence units verdicts take from a score")
    max_raise: float = Field(0.5, ge=0, le=20, description="the most evidence units verdicts add to a score")
    dismiss_weight: float = Field(5.0, gt=0, le=100, description="a false-positive verdict counts this many "
                                  "confirmations")


class RuleSettings(_Strict):
    enabled: bool = True
    severity: SEVERITY | None = None
    min_score: float | None = Field(None, ge=0, le=1, description="fused score that corroborates the rule")


class DetectorSettings(_Strict):
    """Detection: which detectors run, their weights and hyperparameters, how findings are decided."""

    threshold: float = Field(0.78, gt=0, le=1, description="fused score that makes a finding alone")
    rule_min_score: float = Field(0.75, ge=0, le=1, description="fused score that corroborates a named rule")
    rule_min_severity: SEVERITY = Field("high", description="named rules below this severity make no finding")
    fusion_scale: float = Field(4.0, gt=0, description="evidence units at which the fused score is 0.63")
    seed: int = Field(42, ge=0, description="seed of every learned model (replays are deterministic)")
    shape: ShapeSettings = Field(default_factory=ShapeSettings)
    hst: HstSettings = Field(default_factory=HstSettings)
    pyod: PyodSettings = Field(default_factory=PyodSettings)
    baseline: BaselineSettings = Field(default_factory=BaselineSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    wallets: WalletAlertSettings = Field(default_factory=WalletAlertSettings)
    deployments: DeploymentSettings = Field(default_factory=DeploymentSettings)
    rule_files: list[Path] = Field(default_factory=list, description="your rule files, beside the built-in one")
    unit_modules: list[str] = Field(default_factory=list, description="Python modules of your own feature units, "
                                    "imported before the engine is built (each calls detectors.units.register)")
    rules: dict[str, RuleSettings] = Field(default_factory=dict, description="per named rule: enabled, severity, "
                                           "min_score")

    @field_validator("rule_files", "unit_modules", mode="before")
    @classmethod
    def _paths(cls, v: Any) -> Any:
        if isinstance(v, str):  # the environment variable form: comma-separated
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    def engine_config(self, *, rules_path: Path | None = None, live: bool = False) -> EngineConfig:
        """The engine configuration these settings describe (``rules_path``: the ``--rules`` file in
        place of the built-in one; ``live``: never wait on a model refit), the user's feature unit
        modules imported first (their features are then known to the rules)."""
        for name in self.unit_modules:
            try:
                importlib.import_module(name)
            except Exception as err:  # an ImportError, or the module's own error: one line either way
                why = f"{type(err).__name__}: {err}"
                raise ConfigError(f"detectors.unit_modules: cannot import {name!r}: {why}") from None
        switches = {"shape": self.shape, "hst": self.hst, "pyod": self.pyod, "baseline": self.baseline}
        return EngineConfig(
            seed=self.seed, detectors=tuple(n for n, sw in switches.items() if sw.enabled),
            alert_threshold=self.threshold, rule_min_severity=self.rule_min_severity,
            rule_min_score=self.rule_min_score, weights={n: sw.weight for n, sw in switches.items()},
            fusion_scale=self.fusion_scale, hst_trees=self.hst.trees, hst_height=self.hst.height,
            hst_window=self.hst.window, pyod_window=self.pyod.window, pyod_refit_every=self.pyod.refit_every,
            pyod_min_fit=self.pyod.min_fit, baseline_min_history=self.baseline.min_history,
            baseline_max_addresses=self.baseline.max_addresses, feedback_learning_rate=self.feedback.learning_rate,
            feedback_max_shift=self.feedback.max_shift, feedback_max_raise=self.feedback.max_raise,
            feedback_dismiss_weight=self.feedback.dismiss_weight, wallet_threshold=self.wallets.threshold,
            wallet_min_watch=self.wallets.min_watch_days * 86400, wallet_cooldown=self.wallets.cooldown_days * 86400,
            deployment_threshold=self.deployments.threshold if self.deployments.enabled else None,
            deterministic_refit=not live,
            rules_path=str(rules_path) if rules_path else None, rules_files=tuple(str(p) for p in self.rule_files),
            unit_modules=tuple(self.unit_modules),
            rule_overrides=tuple((name, r.enabled, r.severity, r.min_score) for name, r in sorted(self.rules.items())),
        )


class MonitorSettings(MonitorSpec):
    """A monitor (``detectors/monitors/spec.py``) and the responses its alerts get."""

    responses: list[Annotated[ResponseSpec, Field(discriminator="kind")]] = []
    respond_to_detectors: Literal["info", "low", "medium", "high", "critical"] | None = Field(
        None, description="also respond to detector alerts of this severity or above on the watched addresses")


class GuardianSettings(_Strict):
    """The key that signs response transactions: ``CHAINSENTRY_GUARDIAN_KEY`` (a hex private key), or
    an encrypted ``keystore`` file unlocked with ``CHAINSENTRY_GUARDIAN_PASSWORD``."""

    keystore: Path | None = None


def check_monitors(monitors: list[MonitorSettings]) -> list[MonitorSettings]:
    """Compile every monitor (ABIs read, expressions parsed and checked): one clear error at load."""
    names: set[str] = set()
    for m in monitors:
        if m.name in names:
            raise ValueError(f"two monitors are named {m.name!r}")
        names.add(m.name)
        try:
            Monitor(m)
        except MonitorError as err:
            raise ValueError(str(err)) from None
        for r in m.responses:
            for field in ("contract", "safe"):
                value = getattr(r, field, None)
                if value is not None and not (value.startswith("0x") and len(value) == 42):
                    raise ValueError(f"monitor {m.name!r}, response {r.name!r}: {field} {value!r} is not an address")
    return monitors


class Settings(_Strict):
    rpc: list[str] = Field(default_factory=list, description="HTTP JSON-RPC URLs, failover in order")
    ws: str | None = Field(None, description="WebSocket URL for new heads and pending transactions (else polling)")
    data_dir: Path = Field(Path("chainsentry-data"), description="checkpoint, alert store, detector snapshot")
    api: str = Field("127.0.0.1:8000", description="HOST:PORT of the API, /metrics and /healthz")
    rpc_client: RpcSettings = Field(default_factory=RpcSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    transport: TransportSettings = Field(default_factory=TransportSettings)
    subscriptions: list[dict[str, Any]] = Field(
        default_factory=list, description="alert destinations with filters (docs/alerts.md: Subscriptions)")
    detectors: DetectorSettings = Field(default_factory=DetectorSettings)
    monitors: list[MonitorSettings] = Field(default_factory=list,
                                            description="your contracts watched (README: Monitors)")
    guardian: GuardianSettings = Field(default_factory=GuardianSettings)

    _monitors = field_validator("monitors")(classmethod(lambda cls, v: check_monitors(v)))

    @field_validator("rpc", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [u.strip() for u in v.split(",") if u.strip()]
        return v

    @field_validator("rpc")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s):// URL")
        return v

    @field_validator("ws")
    @classmethod
    def _ws(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("ws://", "wss://")):
            raise ValueError(f"{v!r} is not a ws:// or wss:// URL")
        return v

    @field_validator("api")
    @classmethod
    def _api(cls, v: str) -> str:
        parse_hostport(v)
        return v

    @property
    def api_host_port(self) -> tuple[str, int]:
        return parse_hostport(self.api)


def parse_hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6).

    >>> parse_hostport("127.0.0.1:8000"), parse_hostport("[::1]:9")
    (('127.0.0.1', 8000), ('::1', 9))
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{value!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    p = int(port)
    if not 0 <= p <= 65535:
        raise ValueError(f"port {p} out of range")
    return host, p


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    """CLI flags left unset are None: they must not override the file or the environment."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            v = _drop_none(v)
            if not v:
                continue
        if v is not None:
            out[k] = v
    return out


# CHAINSENTRY_* variables that are not configuration keys: secrets (read by load_secrets), and the
# build's and tools' own
OTHER_VARIABLES = frozenset({
    "CHAINSENTRY_API_TOKEN", "CHAINSENTRY_API_AUTH_READS", "CHAINSENTRY_WEBHOOK_SECRET", "CHAINSENTRY_ANVIL",
    "CHAINSENTRY_NO_EXTENSIONS", "CHAINSENTRY_HEALTH_URL", "CHAINSENTRY_KAFKA_BOOTSTRAP", "CHAINSENTRY_SECRETS_KEY",
    "CHAINSENTRY_GUARDIAN_KEY", "CHAINSENTRY_GUARDIAN_PASSWORD",
})


@dataclass(frozen=True)
class Secrets:
    """Credentials: read from the environment once, by the command (:func:`load_secrets`), and
    handed to what needs them; never a config key. Each is a ``SecretStr``: its ``repr`` and
    ``str`` are masked, so a log line or an error message cannot show it; ``reveal`` gives the
    value at the one place that uses it (signing, comparing a token, unsealing)."""

    api_token: SecretStr | None = None  # bearer token for API writes (and reads with auth_reads)
    webhook_secret: SecretStr | None = None  # signs webhooks without a secret of their own
    secrets_key: SecretStr | None = None  # Fernet key sealing API subscriptions' secrets in the store
    guardian_key: SecretStr | None = None  # signs response transactions (a hex private key)
    guardian_password: SecretStr | None = None  # unlocks guardian.keystore
    auth_reads: bool = False  # API reads need the token too

    @staticmethod
    def reveal(secret: SecretStr | None) -> str | None:
        return secret.get_secret_value() if secret is not None else None

    def __repr__(self) -> str:
        held = [f.name for f in fields(self) if f.name != "auth_reads" and getattr(self, f.name)]
        return f"Secrets(set: {', '.join(held) or 'none'}; auth_reads={self.auth_reads})"


def load_secrets(environ: Mapping[str, str] | None = None) -> Secrets:
    """The secrets in ``environ`` (default: the process environment). Called once per command."""
    env = os.environ if environ is None else environ

    def secret(name: str) -> SecretStr | None:
        return SecretStr(env[name]) if env.get(name) else None

    return Secrets(api_token=secret("CHAINSENTRY_API_TOKEN"), webhook_secret=secret("CHAINSENTRY_WEBHOOK_SECRET"),
                   secrets_key=secret("CHAINSENTRY_SECRETS_KEY"), guardian_key=secret("CHAINSENTRY_GUARDIAN_KEY"),
                   guardian_password=secret("CHAINSENTRY_GUARDIAN_PASSWORD"),
                   auth_reads=env.get("CHAINSENTRY_API_AUTH_READS", "").lower() in ("1", "true", "yes"))


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``CHAINSENTRY_<SECTION>__<KEY>`` variables as a settings document. A ``CHAINSENTRY_*`` name
    that is neither a setting nor one of ``OTHER_VARIABLES`` is a typo, refused like a config key."""
    out: dict[str, Any] = {}
    prefix = "CHAINSENTRY_"
    sections = set(Settings.model_fields)
    for name, value in environ.items():
        if name == "CHAINSENTRY_KAFKA_BOOTSTRAP":  # a short alias, as the deploy files use it
            out.setdefault("transport", {}).setdefault("kafka", {}).setdefault("bootstrap", value)
            continue
        if not name.startswith(prefix) or name in OTHER_VARIABLES:
            continue
        path = name[len(prefix) :].lower().split("__")
        if path[0] not in sections:
            known = [prefix + s.upper() for s in sections] + sorted(OTHER_VARIABLES)
            guess = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            raise ConfigError(f"unknown environment variable {name}{hint}")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _explain(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            model: Any = Settings
            for part in e["loc"][:-1]:
                field = model.model_fields.get(str(part))
                model = field.annotation if field is not None else None
                if model is None or not isinstance(model, type):
                    break
            known = list(model.model_fields) if isinstance(model, type) and hasattr(model, "model_fields") else []
            guess = difflib.get_close_matches(str(e["loc"][-1]), known, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else f" (known: {', '.join(known)})" if known else ""
            lines.append(f"unknown key {loc!r}{hint}")
        else:
            lines.append(f"{loc}: {e['msg']}")
    return "; ".join(lines)


def _relative_abis(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """Monitors' ABI files and a guardian keystore named relative to the config file, made absolute."""
    monitors = doc.get("monitors")
    if isinstance(monitors, list):
        for m in monitors:
            if isinstance(m, dict) and isinstance(m.get("abis"), list):
                m["abis"] = [a if not isinstance(a, str) or a in BUILTIN or Path(a).is_absolute() else str(base / a)
                             for a in m["abis"]]
    guardian = doc.get("guardian")
    if isinstance(guardian, dict) and isinstance(guardian.get("keystore"), str):
        guardian["keystore"] = str(base / guardian["keystore"])
    return doc


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from defaults, file, environment and ``overrides`` (CLI flags)."""
    doc: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as err:
            raise ConfigError(f"cannot read config file {p}: {err.strerror}") from None
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {p} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping of keys, not {type(loaded).__name__}")
        doc = _relative_abis(loaded, p.parent)
    doc = _deep_merge(doc, _env_overrides(os.environ if environ is None else environ))
    doc = _deep_merge(doc, _drop_none(overrides or {}))
    try:
        return Settings.model_validate(doc)
    except ValidationError as err:
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{where}: {_explain(err)}") from None

"""The ``chainsentry`` command line: run, replay, worker, record, evaluate, demo.

A user mistake (a :class:`~ingest.errors.UserError`: a bad flag value, a config typo, a missing
file, a node that cannot be reached) ends with one line on stderr and exit code 2; anything else
is a bug and prints its traceback. An interrupted command exits 130.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.machinery
import importlib.metadata
import importlib.util
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer's own click, as it raises them

from ingest.errors import UserError

from .compiled import COMPILED_MODULES

if TYPE_CHECKING:
    from detectors.engine import TxScore
    from ingest.events import Block

    from .config import Settings

# Every command imports what it needs in its body: `chainsentry --help` and `--version` load typer
# and nothing heavy (no Kafka, pyod, scipy or detectors); benchmarks/bench_cli.py measures it.

T = TypeVar("T")

app = typer.Typer(
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no boxes, and nothing cut at 80 columns off a terminal
    help="Streaming anomaly detection for EVM chains.",
)
err_console = Console(stderr=True, soft_wrap=True)  # lines are not cut at 80 columns off a terminal


def build_info() -> str:
    """``chainsentry <version>; compiled: <n>/<m> hot modules`` (chainsentry/compiled.py, the README)."""
    compiled = [m for m in COMPILED_MODULES if _compiled(m)]
    version = importlib.metadata.version("chainsentry")
    return f"chainsentry {version}; compiled: {len(compiled)}/{len(COMPILED_MODULES)} hot modules"


def _compiled(module: str) -> bool:
    """Whether the import system would load ``module`` from an extension (found next to its .py,
    as Python finds it, without importing the module or its package)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return False
    base = Path(next(iter(spec.submodule_search_locations)), *rest)
    return any(base.with_name(base.name + suffix).exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def _version(value: bool) -> None:
    if value:
        print(build_info())
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="print the version and whether the hot modules are compiled")] = False) -> None:
    """Streaming anomaly detection for EVM chains."""

class FlagError(UserError):
    """A flag value the command itself refuses (one line, exit 2)."""


def _user_error(err: BaseException) -> bool:
    """A mistake the user can fix (one line, exit 2); anything else is a bug and shows its traceback."""
    if isinstance(err, UserError):
        return True
    kafka_errors = sys.modules.get("kafka.errors")  # loaded only by the commands that use Kafka
    return kafka_errors is not None and isinstance(err, kafka_errors.KafkaError)


RpcOpt = Annotated[
    list[str] | None, typer.Option("--rpc", help="HTTP JSON-RPC URL (repeat or comma-separate for failover)")
]
WsOpt = Annotated[str | None, typer.Option("--ws", help="WebSocket URL for newHeads and pending transactions")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file", exists=False)]
TracesOpt = Annotated[str | None, typer.Option("--traces", help="auto | debug | parity | off")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="more logging (-v info, -vv debug)")]
WebhookOpt = Annotated[str | None, typer.Option(
    "--webhook", help="deliver alerts to this URL, signed with $CHAINSENTRY_WEBHOOK_SECRET")]
TransportOpt = Annotated[str | None, typer.Option("--transport", help="inprocess (default) | kafka")]
KafkaBootstrapOpt = Annotated[str | None, typer.Option(
    "--kafka-bootstrap", help="HOST:PORT of a broker (default: config, $CHAINSENTRY_KAFKA_BOOTSTRAP)")]
PartitionsOpt = Annotated[int | None, typer.Option(
    "--partitions", min=1, help="state shards = partitions of the calls topic (default 1)")]
TopicPrefixOpt = Annotated[str | None, typer.Option("--topic-prefix", help="Kafka topic prefix (default chainsentry)")]
AllowPrivateOpt = Annotated[bool, typer.Option(
    "--webhook-allow-private", help="allow a loopback or private webhook address")]


def _logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose < 2:
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _traces(value: str | None) -> str | None:
    from ingest.fetch import TRACE_MODES

    if value is not None and value not in TRACE_MODES:
        raise FlagError(f"--traces must be one of {', '.join(TRACE_MODES)}, not {value!r}")
    return value


def _rpc_list(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [u.strip() for v in values for u in v.split(",") if u.strip()]


def _check_outputs(**paths: Path | None) -> None:
    from .outfiles import check_writable

    for name, path in paths.items():
        check_writable(path, "--" + name.replace("_", "-"))


def _settings(config: Path | None, **overrides: Any) -> Settings:
    from .config import load_settings

    return load_settings(config, overrides=overrides)


@app.command()
def run(
    rpc: RpcOpt = None,
    ws: WsOpt = None,
    config: ConfigOpt = None,
    api: Annotated[str | None, typer.Option("--api", help="HOST:PORT for the API and /metrics")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="checkpoint and store directory")] = None,
    traces: TracesOpt = None,
    confirmations: Annotated[int | None, typer.Option("--confirmations", min=0)] = None,
    start_block: Annotated[
        int | None, typer.Option("--start-block", min=0, help="first block without a checkpoint")
    ] = None,
    mempool: Annotated[bool | None, typer.Option("--mempool/--no-mempool", help="follow pending transactions")] = None,
    trace_pending: Annotated[bool | None, typer.Option(
        "--trace-pending/--no-trace-pending", help="call trees for pending txs via debug_traceCall")] = None,
    events_out: Annotated[
        Path | None, typer.Option("--events-out", help="also write every chain event as JSONL")
    ] = None,
    scores: Annotated[Path | None, typer.Option("--scores", help="write mined transactions' scores")] = None,
    alerts: Annotated[Path | None, typer.Option("--alerts", help="write alerts as JSONL")] = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="attack-shape rules YAML (default: built in)")] = None,
    snapshot_in: Annotated[Path | None, typer.Option(
        "--snapshot-in", help="start from this learned state (replay HISTORY --snapshot-out S) when the data "
                              "directory holds none of its own")] = None,
    webhook: WebhookOpt = None,
    webhook_allow_private: AllowPrivateOpt = False,
    duration: Annotated[float | None, typer.Option("--duration", help="stop after this many seconds")] = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Follow a node live: blocks and mempool in, /metrics and /healthz out.

    Example: chainsentry run --rpc http://127.0.0.1:8545 --ws ws://127.0.0.1:8545
    """
    from detectors.snapshot import save_snapshot

    from .config import ConfigError, load_secrets
    from .replaying import build_engine
    from .service import build_service

    _logging(verbose)
    _check_outputs(events_out=events_out, scores=scores, alerts=alerts)
    settings = _settings(
        config, rpc=_rpc_list(rpc), ws=ws, api=api, data_dir=data_dir,
        ingest={"traces": _traces(traces), "confirmations": confirmations, "start_block": start_block,
                "mempool": mempool, "trace_pending": trace_pending},
    )
    if not settings.rpc:
        raise ConfigError("no RPC URL: give --rpc URL or set rpc in the config file")
    snapshot = settings.data_dir / "detectors.snapshot"
    if snapshot.exists() and snapshot_in is not None:  # a restart resumes its own state, learned since
        logging.getLogger("chainsentry.run").warning("resuming from %s; --snapshot-in %s is for a first start",
                                                     snapshot, snapshot_in)
    engine = build_engine(settings, rules, snapshot if snapshot.exists() else snapshot_in, live=True)
    service = build_service(settings, load_secrets(), engine, webhook=webhook, allow_private=webhook_allow_private,
                            scores=scores, alerts=alerts, events_out=events_out)
    status = _status_writer()
    err_console.print(f"chainsentry run: following {', '.join(settings.rpc)}; API on http://{settings.api} "
                      "(/metrics, /healthz, /status)", highlight=False)
    try:
        run_async(service.run(duration=duration, status_out=status))
    finally:
        if engine.scored:
            try:
                save_snapshot(engine, snapshot)
            except OSError as err:  # reported, without hiding why the run ended (a full disk, say)
                logging.getLogger("chainsentry.run").error("could not save the detector snapshot %s: %s",
                                                           snapshot, err)


def _status_writer() -> Any:
    """A live one-line status on a terminal; a log line every 10 s otherwise."""
    if sys.stderr.isatty():
        def write(line: str) -> None:
            sys.stderr.write("\r\x1b[2K" + line)
            sys.stderr.flush()
        return write
    last = [0.0]

    def log_line(line: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 10:
            last[0] = now
            print(line, file=sys.stderr, flush=True)
    return log_line


@app.command()
def replay(
    sources: Annotated[list[str], typer.Argument(help="block JSONL files / directories, or one RPC URL")],
    first: Annotated[int | None, typer.Option("--from", help="first block (required with an RPC URL)")] = None,
    last: Annotated[int | None, typer.Option("--to", help="last block (required with an RPC URL)")] = None,
    config: ConfigOpt = None,
    traces: TracesOpt = None,
    scores: Annotated[Path | None, typer.Option("--scores", help="write one score object per transaction")] = None,
    alerts: Annotated[Path | None, typer.Option("--alerts", help="write the alerts as JSONL")] = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="attack-shape rules YAML (default: built in)")] = None,
    snapshot_in: Annotated[Path | None, typer.Option("--snapshot-in", help="start from learned state")] = None,
    snapshot_out: Annotated[Path | None, typer.Option("--snapshot-out", help="save learned state at the end")] = None,
    feedback: Annotated[Path | None, typer.Option(
        "--feedback", help="labels CSV (tx_hash,label): each alert's label is given back as an analyst's verdict "
                           "after its block")] = None,
    chain_id: Annotated[int, typer.Option("--chain-id", min=0, help="chain id for alert ids (files carry none)")] = 1,
    webhook: WebhookOpt = None,
    webhook_allow_private: AllowPrivateOpt = False,
    store: Annotated[Path | None, typer.Option("--store", help="alert store (SQLite) for --webhook")] = None,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="default: on a terminal")] = None,
    transport: TransportOpt = None,
    kafka_bootstrap: KafkaBootstrapOpt = None,
    partitions: PartitionsOpt = None,
    topic_prefix: TopicPrefixOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Replay history through the detectors, deterministically; prints a JSON summary.

    Example: chainsentry replay ../shared/data/attacks-dev.jsonl.gz --scores scores.jsonl --alerts alerts.jsonl

    With --transport kafka the blocks go to the detector workers' group (chainsentry worker --role
    detect); with --scores/--alerts it waits until the group has scored the whole input.
    """
    import orjson

    from ingest import FileBlockSource, MappingError, SourceError

    from .replaying import build_engine, replay, revealing_verdicts, rpc_source
    from .scoring import Scorer

    _logging(verbose)
    if first is not None and last is not None and last < first:
        raise SourceError(f"--to {last} is below --from {first}")
    _check_outputs(scores=scores, alerts=alerts, snapshot_out=snapshot_out)
    settings = _settings(config, ingest={"traces": _traces(traces)},
                         transport=_transport_overrides(transport, kafka_bootstrap, partitions, topic_prefix))
    if settings.transport.kind == "kafka":
        _replay_kafka(settings, sources, first, last, chain_id, scores, alerts, webhook, webhook_allow_private,
                      store, sys.stderr.isatty() if progress is None else progress)
        return
    delivery = None
    if webhook is not None or settings.subscriptions:
        from .config import load_secrets
        from .delivery import build_delivery

        delivery = build_delivery(settings, load_secrets(), webhook, webhook_allow_private,
                                  store or Path(tempfile.mkdtemp()) / "alerts.db")
    scorer = Scorer(build_engine(settings, rules, snapshot_in, live=False), chain_id=chain_id, scores_path=scores,
                    alerts_path=alerts, on_alert=delivery.accept if delivery is not None else None)
    if settings.monitors:  # the config's monitors run in a replay too (their responses do not)
        from detectors.monitors import Monitor, MonitorSet

        scorer.monitors = MonitorSet((Monitor(m) for m in settings.monitors), chain_id=chain_id)
    on_block: Callable[[Block], list[TxScore]] = scorer.block
    if feedback is not None:
        from detectors.evaluate import read_labels

        kind, labels = read_labels(feedback)
        if kind != "tx":
            raise FlagError(f"--feedback {feedback}: needs transaction labels (tx_hash,label)")
        on_block = revealing_verdicts(scorer.block, scorer.engine, labels)
    show = sys.stderr.isatty() if progress is None else progress
    started = time.perf_counter()
    errors: list[str] = []

    def on_error(err: MappingError) -> None:
        errors.append(str(err))
        logging.getLogger("chainsentry.replay").warning("%s", err)

    stats: dict[str, Any] = {}
    if any(s.startswith(("http://", "https://")) for s in sources):
        if len(sources) != 1:
            raise SourceError("give either one RPC URL or files, not both")
        if first is None or last is None:
            raise SourceError("replaying from an RPC URL needs --from N --to M")
        rpc_range, rpc = rpc_source(settings.model_copy(update={"rpc": sources}), first, last, on_error)

        async def from_node() -> tuple[int, int]:
            try:
                return await replay(rpc_range, on_block, show=show, console=err_console)
            finally:
                await rpc.aclose()

        stats["blocks"], stats["transactions"] = run_async(from_node())
        stats.update(bad_lines=0, traces=rpc_range.fetcher.trace_mode)
    else:
        files = FileBlockSource(sources, first=first, last=last, on_error=on_error)
        try:
            stats["blocks"], stats["transactions"] = run_async(replay(files, on_block, show=show,
                                                                      console=err_console))
        except SourceError as err:  # a file breaks midway: what came before it is scored and kept
            scorer.close()
            kept = f", written to {scores}" if scores is not None else ""
            raise SourceError(f"{err}; the {files.stats.blocks} blocks before it ({files.stats.transactions} "
                              f"transactions) were replayed{kept}") from None
        stats.update(bad_lines=files.stats.bad_lines, files=[str(f) for f in files.files])
    scorer.close()
    if snapshot_out is not None:
        from detectors.snapshot import save_snapshot

        save_snapshot(scorer.engine, snapshot_out)
        stats["snapshot"] = str(snapshot_out)
    stats["alerts"] = scorer.findings
    if feedback is not None:
        stats["feedback"] = scorer.engine.feedback_summary()["verdicts"]
    if delivery is not None:
        stats["webhook"] = run_async(delivery.finish())
    elapsed = time.perf_counter() - started
    stats["malformed_fields"] = len(errors)
    stats["seconds"] = round(elapsed, 3)
    stats["tx_per_s"] = round(stats["transactions"] / elapsed, 1) if elapsed > 0 else None
    typer.echo(orjson.dumps(stats).decode())


def _transport_overrides(kind: str | None, bootstrap: str | None, partitions: int | None,
                         prefix: str | None) -> dict[str, Any]:
    if kind is not None and kind not in ("inprocess", "kafka"):
        raise FlagError(f"--transport must be inprocess or kafka, not {kind!r}")
    return {"kind": kind, "partitions": partitions, "kafka": {"bootstrap": bootstrap, "topic_prefix": prefix}}


def _replay_kafka(settings: Settings, sources: list[str], first: int | None, last: int | None, chain_id: int,
                  scores: Path | None, alerts: Path | None, webhook: str | None, allow_private: bool,
                  store: Path | None, show: bool) -> None:
    import orjson

    from ingest import FileBlockSource, SourceError

    from .config import load_secrets
    from .delivery import build_delivery
    from .roles import replay_kafka

    if any(s.startswith(("http://", "https://")) for s in sources):
        raise SourceError("a Kafka replay reads block files; record an RPC range first (chainsentry record)")
    delivery = None
    if webhook is not None or settings.subscriptions:
        delivery = build_delivery(settings, load_secrets(), webhook, allow_private,
                                  store or Path(tempfile.mkdtemp()) / "alerts.db")
    started = time.perf_counter()
    source = FileBlockSource(sources, first=first, last=last)

    def waiting(seconds: float) -> None:
        err_console.print(f"waiting for the detector group ({seconds:.0f} s): is `chainsentry worker --role detect` "
                          "running against the same broker and topics?", highlight=False)

    collect_alerts = alerts if alerts is not None else (Path(tempfile.mkdtemp()) / "a.jsonl" if delivery else None)
    stats = replay_kafka(settings, chain_id, source, scores=scores, alerts=collect_alerts, on_wait=waiting,
                         show=show, console=err_console)
    produced = stats.pop("alert_list", [])
    if delivery is not None:
        for a in produced:
            delivery.accept(a)
        stats["webhook"] = run_async(delivery.finish())
    elapsed = time.perf_counter() - started
    stats["seconds"] = round(elapsed, 3)
    stats["tx_per_s"] = round(stats["transactions"] / elapsed, 1) if elapsed > 0 else None
    typer.echo(orjson.dumps(stats).decode())


@app.command()
def worker(
    role: Annotated[str, typer.Option("--role", help="ingest | detect | alert")],
    transport: TransportOpt = "kafka",
    kafka_bootstrap: KafkaBootstrapOpt = None,
    partitions: PartitionsOpt = None,
    topic_prefix: TopicPrefixOpt = None,
    config: ConfigOpt = None,
    chain_id: Annotated[int | None, typer.Option(
        "--chain-id", min=0, help="detect/alert: the chain whose topics to use (default: the one chain whose calls "
                           "topic exists, waiting for an ingest role or a Kafka replay to create it)")] = None,
    rpc: RpcOpt = None,
    ws: WsOpt = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="detect: attack-shape rules YAML")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", help="detect: serve /metrics on HOST:PORT")] = None,
    api: Annotated[str | None, typer.Option("--api", help="alert/ingest: HOST:PORT for the API and /metrics")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="alert/ingest: store and checkpoints")] = None,
    webhook: WebhookOpt = None,
    webhook_allow_private: AllowPrivateOpt = False,
    duration: Annotated[float | None, typer.Option("--duration", help="stop after this many seconds")] = None,
    verbose: VerboseOpt = 0,
) -> None:
    """One scale-out role over Kafka; run as many detect workers as partitions allow.

    Example: chainsentry worker --role detect --kafka-bootstrap 127.0.0.1:9092 --metrics 127.0.0.1:9101
    """
    _logging(verbose)
    if role not in ("ingest", "detect", "alert"):
        raise FlagError(f"--role must be ingest, detect or alert, not {role!r}")
    if transport != "kafka":
        raise FlagError("worker roles run over Kafka: --transport kafka")
    settings = _settings(config, rpc=_rpc_list(rpc), ws=ws, api=api, data_dir=data_dir,
                         transport=_transport_overrides("kafka", kafka_bootstrap, partitions, topic_prefix))
    from . import roles
    from .config import ConfigError, load_secrets
    from .kafka import discover_chain

    k = settings.transport.kafka
    err_console.print(f"chainsentry worker: role {role}, Kafka {k.bootstrap}, topic prefix {k.topic_prefix}"
                      + (f", chain {chain_id}" if chain_id is not None else ""), highlight=False)
    if role == "ingest":
        if not settings.rpc:
            raise ConfigError("the ingest role needs --rpc URL")
        run_async(roles.run_ingest(settings, load_secrets(), duration))
        return
    import threading

    started = time.monotonic()
    stop = threading.Event()
    timer = threading.Timer(duration, stop.set) if duration is not None else None
    if timer is not None:
        timer.daemon = True  # SIGTERM ends the worker at once; the timer must not hold the process
        timer.start()
    try:
        roles.on_signals(stop.set)
        if chain_id is None:
            chain_id = discover_chain(k.bootstrap, k.topic_prefix, wait=k.setup_wait, give_up=stop.is_set)
            if chain_id is None:
                return
        if role == "detect":
            roles.run_detect(settings, chain_id, rules, metrics, stop)
        else:
            remaining = None if duration is None else max(0.0, duration - (time.monotonic() - started))
            run_async(roles.run_alert(settings, load_secrets(), chain_id, webhook, webhook_allow_private, remaining))
    finally:
        if timer is not None:
            timer.cancel()


@app.command()
def record(
    out: Annotated[Path, typer.Option("--out", "-o", help="block JSONL file to write (appends; resumes)")],
    rpc: RpcOpt = None,
    ws: WsOpt = None,
    config: ConfigOpt = None,
    first: Annotated[int | None, typer.Option("--from", min=0, help="first block")] = None,
    last: Annotated[int | None, typer.Option("--to", min=0, help="last block")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="keep following the head (instead of --to)")] = False,
    mempool_out: Annotated[Path | None, typer.Option("--mempool-out", help="pending transactions JSONL")] = None,
    traces: TracesOpt = None,
    confirmations: Annotated[int | None, typer.Option("--confirmations", min=0)] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="stop following after N seconds")] = None,
    fsync: Annotated[bool, typer.Option("--fsync/--no-fsync", help="fsync after each block")] = True,
    verbose: VerboseOpt = 0,
) -> None:
    """Write what ingest sees (blocks with receipts and traces) as block JSONL, for replay.

    Example: chainsentry record --rpc http://127.0.0.1:8545 --from 0 --to 100 --out blocks.jsonl
    """
    import orjson

    from ingest import SourceError

    from .config import ConfigError
    from .recording import record as record_blocks

    _logging(verbose)
    if follow == (last is not None):
        raise SourceError("give exactly one of --to M or --follow")
    if not follow and first is None:
        raise SourceError("--to needs --from")
    if first is not None and last is not None and last < first:
        raise SourceError(f"--to {last} is below --from {first}")
    _check_outputs(out=out, mempool_out=mempool_out)
    settings = _settings(config, rpc=_rpc_list(rpc), ws=ws,
                         ingest={"traces": _traces(traces), "confirmations": confirmations})
    if not settings.rpc:
        raise ConfigError("no RPC URL: give --rpc URL or set rpc in the config file")
    result = run_async(record_blocks(settings, out, first, last, follow, mempool_out, duration, fsync))
    typer.echo(orjson.dumps(result).decode())


@app.command(name="evaluate")
def evaluate_cmd(
    labels: Annotated[Path, typer.Option("--labels", help="labels CSV (tx_hash,label or address,label)")],
    scores: Annotated[Path | None, typer.Option("--scores", help="scores JSONL from replay --scores")] = None,
    alerts: Annotated[Path | None, typer.Option("--alerts", help="alerts JSONL from replay --alerts")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG: PR curve and score timeline")] = None,
    details: Annotated[int | None, typer.Option(
        "--details", min=0, help="also list every labelled positive (score, rank, rank in block, alerted, "
                                 "the labels' other columns) and the N highest-scored ordinary items")] = None,
    bootstrap: Annotated[int, typer.Option(
        "--bootstrap", min=0, help="95% confidence intervals from N stratified bootstrap resamples (0: none)")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="random seed of the bootstrap")] = 0,
    ablate: Annotated[list[Path] | None, typer.Option(
        "--ablate", help="instead of --scores: replay these block files as configured and once without each "
                         "detector, and print each run's metrics side by side (repeat for several files)")] = None,
    warm: Annotated[list[Path] | None, typer.Option(
        "--warm", help="with --ablate: history each run learns from first, unscored (repeatable)")] = None,
    config: ConfigOpt = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="with --ablate: attack-shape rules YAML")] = None,
) -> None:
    """Measure detection against labels; prints the metrics as JSON.

    Example: chainsentry evaluate --scores scores.jsonl --labels ../shared/data/attacks-dev.labels.csv --plot pr.png
    --bootstrap 1000

    Ablation: chainsentry evaluate --ablate ../shared/data/attacks-dev.jsonl.gz --labels
    ../shared/data/attacks-dev.labels.csv (a table on stderr, the JSON on stdout); add --warm HISTORY
    for the detectors' contribution once they have learned a chain's normal
    """
    import orjson

    _check_outputs(plot=plot)
    if (scores is None) == (not ablate):
        raise FlagError("give either --scores (a replay's scores) or --ablate FILE (replay and compare)")
    if warm and not ablate:
        raise FlagError("--warm goes with --ablate")
    if ablate:
        from detectors.ablation import ablate as run_ablation
        from detectors.ablation import table

        settings = _settings(config)
        missing = [str(p) for p in [*ablate, *(warm or [])] if not p.exists()]
        if missing:
            raise FlagError(f"no such file: {missing[0]}")
        result = run_ablation(ablate, labels, settings.detectors.engine_config(rules_path=rules), warm or ())
        err_console.print(table(result), highlight=False, soft_wrap=True)
        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    assert scores is not None
    from detectors.evaluate import evaluate

    typer.echo(orjson.dumps(evaluate(scores, labels, alerts, plot, details, bootstrap, seed),
                            option=orjson.OPT_INDENT_2).decode())


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option("--duration", help="seconds; default until Ctrl-C")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="directory for events.jsonl and the checkpoint")] = None,
    rate: Annotated[float, typer.Option("--rate", help="background transactions per second")] = 40.0,
    wallets: Annotated[int, typer.Option("--wallets", min=2, help="funded wallets on the devnet")] = 60,
    block_time: Annotated[float, typer.Option("--block-time", help="devnet seconds per block")] = 2.0,
    api: Annotated[str, typer.Option("--api", help="HOST:PORT for the API and /metrics")] = "127.0.0.1:8000",
    attack_every: Annotated[float, typer.Option("--attack-every", help="seconds between attacks")] = 20.0,
    first_attack: Annotated[float, typer.Option("--first-attack", help="seconds before the first attack")] = 30.0,
    attacks: Annotated[str | None, typer.Option(
        "--attacks", help="comma-separated scenarios (default all: reentrancy,oracle,phishing,takeover,mixer,"
                          "arbitrary-call)")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML config file; the demo sets the node, API, data directory and webhook")] = None,
    respond: Annotated[bool, typer.Option(
        "--respond/--no-respond", help="the guardian pauses the bank when a drain is seen (else only simulated)")
    ] = True,
    verbose: VerboseOpt = 0,
) -> None:
    """Start a local anvil devnet with a DeFi world, its users' traffic and real exploits at intervals,
    and run the service against it; alerts print live.

    Example: chainsentry demo --duration 150 --out demo-out
    """
    from .config import load_secrets, load_settings
    from .demo import run_demo
    from .devnet.scenarios import ATTACKS

    _logging(verbose)
    chosen = tuple(a.strip() for a in attacks.split(",")) if attacks else ATTACKS
    unknown = [a for a in chosen if a not in ATTACKS]
    if unknown:
        raise FlagError(f"unknown attack scenario(s) {', '.join(unknown)}; known: {', '.join(ATTACKS)}")
    if config is not None:
        load_settings(config, environ={})  # a bad file: one clear error before the devnet starts
    run_async(run_demo(load_secrets(), duration=duration, out=out, rate=rate, wallets=wallets, block_time=block_time,
                       api=api, console=err_console, status=_status_writer(), attack_every=attack_every,
                       first_attack=first_attack, scenarios=chosen, config=config, respond=respond))


class Terminated(Exception):
    """SIGTERM: the command stopped cleanly (tasks cancelled, files closed)."""


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` with SIGTERM cancelling the work, as Ctrl-C does, so cleanup runs."""

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        terminated = False

        def on_term() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_term)
        try:
            return await coro
        except asyncio.CancelledError:
            if terminated:
                raise Terminated from None
            raise

    return asyncio.run(main())


def main() -> None:
    try:
        code = app(standalone_mode=False)  # click's own handling would box usage errors and eat EOFError
    except NoArgsIsHelpError as err:
        if err.ctx is not None:
            typer.echo(err.ctx.get_help())
        sys.exit(2)
    except UsageError as err:
        where = err.ctx.command_path if err.ctx is not None else "chainsentry"
        print(f"chainsentry: error: {err.format_message()} (see {where} --help)", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        err_console.print("\ninterrupted")
        sys.exit(130)
    except Terminated:
        err_console.print("stopped (SIGTERM)")
        sys.exit(0)
    except KeyboardInterrupt:
        err_console.print("\ninterrupted")
        sys.exit(130)
    except Exception as err:
        if _user_error(err):
            print(f"chainsentry: error: {err}", file=sys.stderr)
            sys.exit(2)
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {err.filename}" if err.filename else ""
            print(f"chainsentry: error: disk full{where}: {err.strerror}; what was committed before is kept",
                  file=sys.stderr)
            sys.exit(1)
        raise  # a bug: its traceback
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

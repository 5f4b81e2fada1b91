"""``chainsentry demo``: an anvil devnet with a small DeFi world, its users' traffic, and real
exploits at intervals, watched by the live service (detectors, alert store and lifecycle, signed
webhook to a local receiver, API and /metrics), until Ctrl-C or ``--duration``.

Writes to the output directory: ``alerts.jsonl`` (every alert as raised, mempool and block stage),
``attacks.jsonl`` (each attack's scenario and transaction hashes, written when it is sent),
``scores.jsonl``, ``events.jsonl``, ``webhook.log`` (what the local receiver got, signature
checked), ``alerts.db`` (the store), ``summary.json`` (which attack was caught, at which stage,
and the false alerts on background traffic), and the chain itself as ``blocks.jsonl`` with
``labels.csv`` (each exploit 1, the background 0), to replay and evaluate:
``chainsentry evaluate --ablate DIR/blocks.jsonl --labels DIR/labels.csv``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr
from rich.console import Console

from alerts.model import Alert, ResponseOutcome
from alerts.store import AlertStore
from detectors.engine import ScoringEngine
from ingest import RpcClient

from .config import Secrets, load_settings
from .devnet.anvil import Anvil
from .devnet.defense import demo_monitors, fund, new_guardian, order_in_chain
from .devnet.scenarios import ATTACKS, Attack, DefiDevnet
from .service import build_service


class WebhookReceiver:
    """A loopback webhook receiver that checks each signature and logs what it got."""

    def __init__(self, secret: str, log_path: Path) -> None:
        self.secret = secret.encode()
        self.log_path = log_path
        self.received = 0
        self.bad = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                ts = self.headers.get("X-Chainsentry-Timestamp", "")
                want = "sha256=" + hmac.new(receiver.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(want, self.headers.get("X-Chainsentry-Signature", ""))
                receiver.received += ok
                receiver.bad += not ok
                alert = orjson.loads(body) if ok else {}
                with open(receiver.log_path, "ab") as fh:
                    fh.write(orjson.dumps({"signature_ok": ok, "idempotency_key": self.headers.get("Idempotency-Key"),
                                           "severity": alert.get("severity"), "title": alert.get("title"),
                                           "tx_hash": alert.get("tx_hash"), "status": alert.get("status")}) + b"\n")
                self.send_response(200 if ok else 401)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def summarize(attacks: list[Attack], alerts: list[Alert], outcomes: dict[str, str],
              scored_background: int, responses: dict[str, list[dict[str, Any]]] | None = None,
              prevented: set[str] | None = None) -> dict[str, Any]:
    """Which attacks were caught (and at which stages), prevented, and the false alerts on everything else.

    ``outcomes``: each attack transaction's fate on chain (``succeeded``, ``reverted``, or ``not
    mined`` before the demo stopped); ``scored_background``: the mined transactions scored that
    belong to no attack. ``caught`` counts the attacks that succeeded on chain and alerted;
    a reverted or unmined attack is reported as such, never as caught or missed. ``responses``:
    what was done about each attack's alerts; ``prevented``: the attacks that reverted because a
    response transaction was mined before them.
    """
    responses, prevented = responses or {}, prevented or set()
    attack_txs = {h for a in attacks for h in a.tx_hashes}
    by_tx: dict[str, set[str]] = {}
    for al in alerts:
        by_tx.setdefault(al.tx_hash or "", set()).add(al.stage)
    rows = []
    for a in attacks:
        stages = sorted(by_tx.get(a.attack_tx, set()))
        title = next((al.title for al in alerts if al.tx_hash == a.attack_tx), None)
        outcome = outcomes.get(a.attack_tx, "not mined")
        rows.append({"scenario": a.scenario, "attack_tx": a.attack_tx, "outcome": outcome,
                     "caught": bool(stages) and outcome == "succeeded", "alerted": bool(stages), "stages": stages,
                     "title": title, "prevented": a.attack_tx in prevented,
                     "responses": responses.get(a.attack_tx, [])})
    ours = {r["tx_hash"] for steps in responses.values() for r in steps if r.get("tx_hash")}  # the guardian's
    false_txs = {al.tx_hash or al.id for al in alerts  # (a wallet's: its id)
                 if al.tx_hash not in attack_txs and al.tx_hash not in ours}
    succeeded = [r for r in rows if r["outcome"] == "succeeded"]
    return {"attacks": rows, "caught": sum(r["caught"] for r in rows), "total": len(succeeded),
            "reverted": sum(r["outcome"] == "reverted" for r in rows),
            "prevented": sum(r["prevented"] for r in rows),
            "not_mined": sum(r["outcome"] == "not mined" for r in rows),
            "false_alerts": len(false_txs), "background_transactions": scored_background,
            "false_per_1000": round(1000 * len(false_txs) / scored_background, 3) if scored_background else None}


def write_labels(blocks: Path, out: Path, attacks: list[Attack], outcomes: dict[str, str]) -> None:
    """The labels of the recorded chain ``blocks`` for ``chainsentry evaluate`` (``tx_hash,label,
    incident,date``): 1 for each exploit that succeeded on chain, 0 for the background; the
    scenarios' set-up transactions (deployments, mixer deposits) are left out."""
    exploits = {a.attack_tx: a.scenario for a in attacks if outcomes.get(a.attack_tx) == "succeeded"}
    setup = {h for a in attacks for h in a.tx_hashes} - set(exploits)
    lines = ["tx_hash,label,incident,date"]
    if blocks.exists():
        with open(blocks, "rb") as fh:
            for line in fh:
                for tx in orjson.loads(line).get("transactions", ()):
                    h = tx["hash"]
                    if h not in setup:
                        lines.append(f"{h},1,{exploits[h]}," if h in exploits else f"{h},0,,")
    out.write_text("\n".join(lines) + "\n")


async def attack_outcomes(rpc: RpcClient, attacks: list[Attack]) -> dict[str, str]:
    """The mined transactions of the attacks (set-up and exploit), each ``succeeded`` or ``reverted``
    by its receipt; a transaction not mined yet is absent."""
    hashes = [h for a in attacks for h in a.tx_hashes]
    if not hashes:
        return {}
    receipts = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    return {h: "succeeded" if r.get("status") == "0x1" else "reverted"
            for h, r in zip(hashes, receipts, strict=True) if isinstance(r, dict) and r.get("blockNumber")}


async def run_demo(
    secrets_in: Secrets,
    *,
    duration: float | None,
    out: Path | None,
    rate: float,
    wallets: int,
    block_time: float,
    api: str,
    console: Console,
    status: Callable[[str], None],
    attack_every: float = 20.0,
    first_attack: float = 30.0,
    scenarios: tuple[str, ...] = ATTACKS,
    config: Path | None = None,
    respond: bool = True,
) -> dict[str, Any]:
    """Run the demo; ``config``: a config file whose settings the demo's own (node, API, data
    directory, its webhook) override: the detectors section, for one, applies; ``respond``: the
    bank's guardian pauses it when a drain is seen (else the pause is only simulated)."""
    out_dir = out or Path(tempfile.mkdtemp(prefix="chainsentry-demo-"))
    try:
        return await _run_demo(out_dir, secrets_in, duration=duration, rate=rate, wallets=wallets,
                               block_time=block_time, api=api, console=console, status=status,
                               attack_every=attack_every, first_attack=first_attack, scenarios=scenarios,
                               keep=out is not None, config=config, respond=respond)
    finally:
        if out is None:  # a run without --out leaves nothing behind (its files grow ~450 MB an hour)
            shutil.rmtree(out_dir, ignore_errors=True)


async def _run_demo(out_dir: Path, given: Secrets, *, duration: float | None, rate: float, wallets: int,
                    block_time: float, api: str, console: Console, status: Callable[[str], None], attack_every: float,
                    first_attack: float, scenarios: tuple[str, ...], keep: bool,
                    config: Path | None = None, respond: bool = True) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    # a new devnet each run: the previous run's files, checkpoint and learned state belong to another chain
    for pattern in ("alerts.jsonl", "attacks.jsonl", "scores.jsonl", "events.jsonl", "webhook.log", "alerts.db*",
                    "summary.json", "checkpoint-*.json", "detectors.snapshot", "blocks.jsonl", "labels.csv"):
        for old in out_dir.glob(pattern):
            old.unlink()
    # the demo's own webhook secret unless one is set
    guardian_key, guardian = new_guardian()
    creds = dataclasses.replace(given, webhook_secret=given.webhook_secret or SecretStr(secrets.token_hex(16)),
                                guardian_key=SecretStr(guardian_key))
    del guardian_key
    secret = str(Secrets.reveal(creds.webhook_secret))
    alerts: list[Alert] = []
    attacks: list[Attack] = []
    latencies: list[float] = []  # a pending exploit first seen -> the guardian's transaction sent
    with Anvil(block_time=block_time, accounts=max(wallets, 12)) as node, \
            WebhookReceiver(secret, out_dir / "webhook.log") as receiver:
        traffic_rpc = RpcClient([node.http_url])
        world = DefiDevnet(traffic_rpc, wallets=max(wallets, 12))
        console.print(f"[bold]chainsentry demo[/bold]: deploying the devnet's contracts at {node.http_url} ...",
                      highlight=False)
        await fund(traffic_rpc, guardian)
        await world.setup(mine=False, guardian=guardian)
        theirs = [m.model_dump(mode="json") for m in load_settings(config, environ={}).monitors] if config else []
        settings = load_settings(config, environ={}, overrides={  # validated: a bad --api is one clear error
            "rpc": [node.http_url], "ws": node.ws_url, "api": api, "data_dir": out_dir,
            "monitors": demo_monitors(world.world, respond) + theirs,
            "ingest": {"poll_interval": min(1.0, block_time), "start_block": 0, "trace_pending": True},
            "subscriptions": [{"name": "demo-webhook", "kind": "webhook", "url": receiver.url,
                               "allow_private": True}],
        })
        def on_alert(a: Alert) -> None:
            alerts.append(a)
            console.print(f"[bold red]ALERT[/] {a.severity:>8} {a.stage:<7} {a.title} tx {(a.tx_hash or '')[:14]}"
                          f" score {a.score:.3f}\n        why: {a.description[:200]}", highlight=False)

        def on_response(step: ResponseOutcome, since_seen: float | None) -> None:
            if step.outcome == "sent" and since_seen is not None and step.kind == "transaction" \
                    and not step.detail.startswith("not mined"):
                latencies.append(since_seen)
            seen = f" ({since_seen * 1000:.0f} ms after the pending transaction was first seen)" \
                if since_seen is not None and step.outcome in ("sent", "simulated") else ""
            console.print(f"[bold green]RESPONSE[/] {step.responder} {step.outcome} {step.tx_hash or ''}{seen}\n"
                          f"        {step.detail[:200]}", highlight=False)

        engine = ScoringEngine(settings.detectors.engine_config(live=True))
        service = build_service(settings, creds, engine, scores=out_dir / "scores.jsonl",
                                alerts=out_dir / "alerts.jsonl", events_out=out_dir / "events.jsonl",
                                blocks_out=out_dir / "blocks.jsonl",
                                on_alert=on_alert, on_response=on_response)
        pipeline, delivery = service.pipeline, service.delivery
        console.print(
            f"  devnet   {node.http_url}: {len(world.users)} users ({rate:g} tx/s of transfers, swaps, lending, "
            f"NFT mints, bank deposits), a block every {block_time:g}s\n"
            f"  attacks  {', '.join(scenarios)}: the first after {first_attack:g}s, then one every {attack_every:g}s\n"
            f"  defence  guardian {guardian} may pause the bank; monitor bank-drain "
            f"{'pauses it' if respond else 'simulates a pause (--no-respond)'} when >5 ETH leaves it\n"
            f"  API      http://{api}/alerts   metrics http://{api}/metrics   status http://{api}/status\n"
            f"  webhook  {receiver.url} (signed; log: {out_dir / 'webhook.log'})\n"
            f"  files    {out_dir}/alerts.jsonl, attacks.jsonl, scores.jsonl, summary.json\n"
            "  stop     Ctrl-C" + (f" (or after {duration:g}s)" if duration else ""),
            highlight=False,
        )
        traffic = asyncio.create_task(world.run(rate))

        async def attacker() -> None:
            await asyncio.sleep(first_attack)
            i = 0
            while True:
                scenario = scenarios[i % len(scenarios)]
                if i and i % len(scenarios) == 0:
                    await world.refill()
                with contextlib.suppress(Exception):
                    if await world.resume():
                        console.print("[cyan]the bank's owner unpaused it (incident handled)[/]", highlight=False)
                try:
                    attack = await world.attack(scenario)
                except Exception as err:
                    console.print(f"[yellow]attack {scenario} could not be run: {err}[/]", highlight=False)
                else:
                    attacks.append(attack)
                    with open(out_dir / "attacks.jsonl", "ab") as fh:
                        fh.write(orjson.dumps(attack.to_json() | {"sent_at": time.time()}) + b"\n")
                    console.print(f"[bold magenta]ATTACK[/] {scenario}: tx {attack.attack_tx[:14]} "
                                  f"({attack.description})", highlight=False)
                i += 1
                await asyncio.sleep(attack_every)

        attacking = asyncio.create_task(attacker())

        try:
            await service.run(duration=duration, status_out=status)
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM: stop cleanly, with the summary
            console.print("\nstopping: the attacks and traffic end, deliveries drain, the summary follows",
                          highlight=False)
        finally:
            for task in (attacking, traffic):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.wait_for(delivery.finish(), 10)
        try:
            outcomes = await attack_outcomes(traffic_rpc, attacks)
            responses, prevented = await _responses(traffic_rpc, attacks, alerts, delivery.store, outcomes)
        finally:
            await traffic_rpc.aclose()
        # the background: every mined transaction the service scored, less the attacks' own
        summary = summarize(attacks, alerts, outcomes, max(0, pipeline.stats.txs - len(outcomes)), responses,
                            prevented)
        summary["response_latency_s"] = _percentiles(latencies)
        _rewrite_attacks(out_dir / "attacks.jsonl", summary["attacks"])
        summary["webhook"] = {"received": receiver.received, "bad_signatures": receiver.bad}
        (out_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        write_labels(out_dir / "blocks.jsonl", out_dir / "labels.csv", attacks, outcomes)
        s = pipeline.status()
        others = "".join(f"; {summary[k]} {k.replace('_', ' ')}" for k in ("reverted", "not_mined") if summary[k])
        where = f"summary in {out_dir / 'summary.json'}" if keep else "files removed (give --out DIR to keep them)"
        console.print(f"\ndemo done: {s['blocks']} blocks, {s['transactions']} transactions; attacks caught "
                      f"{summary['caught']} of {summary['total']} that succeeded on chain{others}; "
                      f"prevented {summary['prevented']}; false alerts "
                      f"{summary['false_alerts']} on {summary['background_transactions']} background transactions "
                      f"scored; {where}", highlight=False)
        marks = {"succeeded": None, "reverted": "[yellow]reverted on chain[/]", "not mined": "[dim]not mined[/]"}
        for row in summary["attacks"]:
            mark = marks[row["outcome"]] or ("[green]caught[/]" if row["caught"] else "[red]missed[/]")
            if row["prevented"]:
                mark = "[bold green]prevented: paused before inclusion; exploit reverted[/]"
            console.print(f"  {mark} {row['scenario']:<10} {row['attack_tx'][:14]} stages {row['stages']} "
                          f"{row['title'] or ''}", highlight=False)
        return summary


async def _responses(rpc: RpcClient, attacks: list[Attack], alerts: list[Alert], store: AlertStore,
                     outcomes: dict[str, str]) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
    """Each attack's responses (from its alerts), and the attacks a response transaction prevented:
    the exploit reverted and the response was mined before it."""
    out: dict[str, list[dict[str, Any]]] = {}
    prevented = set()
    for a in attacks:
        ids = sorted({al.id for al in alerts if al.tx_hash == a.attack_tx})
        steps = [r for i in ids for r in store.responses(i)]
        out[a.attack_tx] = [{"responder": r.responder, "kind": r.kind, "outcome": r.outcome, "tx_hash": r.tx_hash,
                             "detail": r.detail} for r in steps]
        if outcomes.get(a.attack_tx) == "reverted":
            for r in steps:
                if r.tx_hash and await order_in_chain(rpc, r.tx_hash, a.attack_tx):
                    prevented.add(a.attack_tx)
    return out, prevented


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)

    def at(q: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4) if ordered else None

    return {"n": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 4) if ordered else None}


def _rewrite_attacks(path: Path, rows: list[dict[str, Any]]) -> None:
    """attacks.jsonl with each attack's ``outcome`` on chain and the ``responses`` taken."""
    if not path.exists():
        return
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
    by_tx = {r["attack_tx"]: r for r in rows}
    with open(path, "wb") as fh:
        for line in lines:
            row = by_tx.get(line.get("attack_tx"), {})
            outcome = str(row.get("outcome", "not mined")).replace(" ", "_")
            fh.write(orjson.dumps(line | {"outcome": outcome, "prevented": row.get("prevented", False),
                                          "responses": row.get("responses", [])}) + b"\n")

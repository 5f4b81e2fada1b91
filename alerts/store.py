"""The alert store and the delivery outbox: SQLite in WAL mode, with numbered schema migrations.

Alerts are upserted by their deterministic id (the same event never makes two rows); a status
change (firing -> confirmed -> retracted) updates the row. The outbox holds one row per
(alert status, subscription) to deliver; a row leaves it only as delivered or dead-lettered, so
whatever was accepted survives a restart, even ``kill -9`` (the write is committed before the
call that accepted it returns).
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import orjson

from ingest.errors import UserError

from .model import Alert, ResponseOutcome

_response_decoder = msgspec.json.Decoder(ResponseOutcome)
Named = Literal["subscriptions", "monitors"]  # the tables of named bodies (fixed names in the SQL)
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

MIGRATIONS: tuple[str, ...] = (
    # 1: alerts, their addresses, and the outbox
    """
    CREATE TABLE alerts (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, stage TEXT, chain_id INTEGER, block_number INTEGER,
        block_hash TEXT, tx_hash TEXT, severity TEXT NOT NULL, severity_rank INTEGER NOT NULL, type TEXT,
        score REAL, detector TEXT, created_at TEXT, created_ts REAL NOT NULL, updated_ts REAL NOT NULL,
        body BLOB NOT NULL
    );
    CREATE INDEX alerts_created ON alerts (created_ts);
    CREATE INDEX alerts_block_hash ON alerts (block_hash);
    CREATE TABLE alert_addresses (alert_id TEXT NOT NULL, address TEXT NOT NULL);
    CREATE INDEX alert_addresses_address ON alert_addresses (address);
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, alert_status TEXT NOT NULL,
        subscription TEXT NOT NULL, url TEXT NOT NULL, body BLOB NOT NULL, state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_ts REAL NOT NULL, last_error TEXT, created_ts REAL NOT NULL,
        UNIQUE (alert_id, alert_status, subscription)
    );
    CREATE INDEX outbox_due ON outbox (state, next_ts);
    """,
    # 2: analyst feedback and the allowlist it feeds
    """
    CREATE TABLE feedback (
        alert_id TEXT NOT NULL, verdict TEXT NOT NULL, note TEXT, created_ts REAL NOT NULL
    );
    CREATE TABLE allowlist (
        detector TEXT NOT NULL, subject TEXT NOT NULL, reason TEXT, created_ts REAL NOT NULL,
        PRIMARY KEY (detector, subject)
    );
    """,
    # 3: subscriptions made through the API (config-file ones live in the config)
    """
    CREATE TABLE subscriptions (name TEXT PRIMARY KEY, body BLOB NOT NULL, updated_ts REAL NOT NULL);
    """,
    # 4: who gave a verdict
    """
    ALTER TABLE feedback ADD COLUMN analyst TEXT;
    """,
    # 5: monitors made through the API, and the responses taken to alerts (one row per alert and response)
    """
    CREATE TABLE monitors (name TEXT PRIMARY KEY, body BLOB NOT NULL, updated_ts REAL NOT NULL);
    CREATE TABLE responses (
        alert_id TEXT NOT NULL, responder TEXT NOT NULL, body BLOB NOT NULL, created_ts REAL NOT NULL,
        PRIMARY KEY (alert_id, responder)
    );
    """,
)


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """A (detector, subject) an analyst marked a false positive: its alerts are suppressed, and the
    detectors raise no finding on the subject (they still score it)."""

    detector: str
    subject: str
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """An analyst's verdict on an alert, as stored: who gave it and when (unix seconds)."""

    alert_id: str
    verdict: str
    analyst: str | None
    note: str | None
    created_ts: float


class StoreError(UserError):
    """A store file that cannot be used (newer schema, not a database)."""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    seq: int
    alert_id: str
    alert_status: str
    subscription: str
    url: str
    body: bytes
    attempts: int


class AlertStore:
    """Alerts and outbox in one SQLite file (``:memory:`` for a throwaway store)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            file = Path(self.path)
            file.parent.mkdir(parents=True, exist_ok=True)
            if file.is_dir():
                raise StoreError(f"{self.path} is a directory, not an alert store")
            if file.exists() and file.stat().st_size == 0:  # SQLite would take it for a new, empty store
                raise StoreError(f"{self.path} is empty (0 bytes): the alerts it held are gone; move it away "
                                 "to start a new store")
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")  # a replaced row (a secret sealed since) leaves no trace
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check(3)").fetchall()]
            if problems != ["ok"]:
                raise StoreError(f"{self.path} is damaged ({'; '.join(problems)}); restore it from a backup or "
                                 "move it away to start a new store")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path} is not a usable alert store: {err}") from None

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema version {version}; this build knows up to {len(MIGRATIONS)}")
        for number in range(version, len(MIGRATIONS)):
            with self._tx():
                self._db.executescript("BEGIN;" + MIGRATIONS[number] + f"PRAGMA user_version = {number + 1};COMMIT;")

    def _tx(self) -> Any:
        return self._lock

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def free_bytes(self) -> int:
        """Free space on the store's disk (what a readiness probe should know before writes fail)."""
        if self.path == ":memory:":
            return 2**62
        try:
            return shutil.disk_usage(Path(self.path).parent).free
        except OSError:
            return 0

    def writable(self) -> bool:
        """Whether a write can be committed now (for readiness checks)."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False

    # -- alerts ----------------------------------------------------------------------------

    def upsert(self, alert: Alert) -> bool:
        """Insert ``alert`` or update it; True if it is new, or its status or stage changed."""
        now = time.time()
        body = alert.to_json()
        with self._lock:
            row = self._db.execute("SELECT status, stage FROM alerts WHERE id = ?", (alert.id,)).fetchone()
            if row is not None and row[0] == alert.status and row[1] == alert.stage:
                return False
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if row is None:
                    self._db.execute(
                        "INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (alert.id, alert.status, alert.stage, alert.chain_id, alert.block_number, alert.block_hash,
                         alert.tx_hash, alert.severity, SEVERITY_RANK.get(alert.severity, 0), alert.type,
                         alert.score, alert.detector, alert.created_at, now, now, body),
                    )
                    self._db.executemany("INSERT INTO alert_addresses VALUES (?, ?)",
                                         [(alert.id, a) for a in alert.addresses])
                else:
                    # a status change, or a mempool alert whose transaction was mined (stage, block)
                    self._db.execute("UPDATE alerts SET status = ?, stage = ?, block_number = ?, block_hash = ?, "
                                     "body = ?, updated_ts = ? WHERE id = ?",
                                     (alert.status, alert.stage, alert.block_number, alert.block_hash, body, now,
                                      alert.id))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return True

    def update_body(self, alert: Alert) -> None:
        """Replace a stored alert's JSON without a status change (a folded-in count, say)."""
        with self._lock:
            self._db.execute("UPDATE alerts SET body = ?, updated_ts = ? WHERE id = ?",
                             (alert.to_json(), time.time(), alert.id))

    def get(self, alert_id: str) -> Alert | None:
        """The alert, with the responses taken to it."""
        row = self._db.execute("SELECT body FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return self._with_responses([Alert.from_json(row[0])])[0] if row else None

    def _with_responses(self, alerts: list[Alert]) -> list[Alert]:
        if not alerts:
            return alerts
        marks = ",".join("?" * len(alerts))
        found: dict[str, list[ResponseOutcome]] = {}
        for alert_id, body in self._db.execute(
                f"SELECT alert_id, body FROM responses WHERE alert_id IN ({marks}) ORDER BY created_ts, responder",
                [a.id for a in alerts]):
            found.setdefault(alert_id, []).append(_response_decoder.decode(body))
        return [a.replace(responses=found[a.id]) if a.id in found else a for a in alerts]

    # -- responses ---------------------------------------------------------------------------

    def claim_response(self, alert_id: str, outcome: ResponseOutcome) -> bool:
        """Record that a response to the alert starts; False if it was taken before (once per alert)."""
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?)",
                                   (alert_id, outcome.responder, orjson.dumps(outcome), time.time()))
            return cur.rowcount == 1

    def record_response(self, alert_id: str, outcome: ResponseOutcome) -> None:
        """The response's latest outcome (sent, then mined, say)."""
        with self._lock:
            self._db.execute("UPDATE responses SET body = ? WHERE alert_id = ? AND responder = ?",
                             (orjson.dumps(outcome), alert_id, outcome.responder))

    def responses(self, alert_id: str) -> list[ResponseOutcome]:
        return [_response_decoder.decode(b) for (b,) in self._db.execute(
            "SELECT body FROM responses WHERE alert_id = ? ORDER BY created_ts, responder", (alert_id,))]

    def add_feedback(self, alert_id: str, verdict: str, note: str | None = None,
                     analyst: str | None = None) -> AllowEntry | None:
        """Record an analyst's verdict (with who and when); a false positive allowlists the alert's
        (detector, subject). Returns the allowlist entry it created, if any."""
        alert = self.get(alert_id)
        if alert is None:
            raise KeyError(alert_id)
        entry = None
        with self._lock:
            self._db.execute("INSERT INTO feedback (alert_id, verdict, note, created_ts, analyst) "
                             "VALUES (?, ?, ?, ?, ?)", (alert_id, verdict, note, time.time(), analyst))
            if verdict == "false_positive" and alert.subject is not None:
                entry = AllowEntry(alert.detector, alert.subject, f"false positive: {alert_id}")
                self._db.execute("INSERT OR REPLACE INTO allowlist VALUES (?, ?, ?, ?)",
                                 (entry.detector, entry.subject, entry.reason, time.time()))
        return entry

    def verdicts(self, limit: int = 20) -> list[Verdict]:
        """The latest verdicts, newest first."""
        rows = self._db.execute("SELECT alert_id, verdict, analyst, note, created_ts FROM feedback "
                                "ORDER BY created_ts DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [Verdict(*row) for row in rows]

    def allowlisted(self, detector: str, subject: str) -> bool:
        row = self._db.execute("SELECT 1 FROM allowlist WHERE (detector = ? OR detector = '*') AND subject = ?",
                               (detector, subject)).fetchone()
        return row is not None

    def allowlist(self) -> list[AllowEntry]:
        rows = self._db.execute("SELECT detector, subject, reason FROM allowlist ORDER BY created_ts").fetchall()
        return [AllowEntry(d, s, r) for d, s, r in rows]

    def firing_up_to(self, block_number: int) -> list[Alert]:
        """Firing block-stage alerts at or below ``block_number`` (candidates for confirmation)."""
        rows = self._db.execute(
            "SELECT body FROM alerts WHERE status = 'firing' AND stage = 'block' AND block_number <= ? "
            "ORDER BY block_number, id", (block_number,)).fetchall()
        return [Alert.from_json(r[0]) for r in rows]

    def by_block(self, block_hash: str) -> list[Alert]:
        rows = self._db.execute("SELECT body FROM alerts WHERE block_hash = ?", (block_hash,)).fetchall()
        return [Alert.from_json(r[0]) for r in rows]

    def query(self, *, min_severity: str | None = None, address: str | None = None, detector: str | None = None,
              status: str | None = None, since: float | None = None, until: float | None = None,
              limit: int = 100, cursor: str | None = None) -> tuple[list[Alert], str | None]:
        """Alerts, newest first, filtered; returns (page, cursor for the next page or None)."""
        where: list[str] = []
        args: list[Any] = []
        if min_severity is not None:
            where.append("severity_rank >= ?")
            args.append(SEVERITY_RANK[min_severity])
        if address is not None:
            where.append("id IN (SELECT alert_id FROM alert_addresses WHERE address = ?)")
            args.append(address.lower())
        if detector is not None:
            where.append("detector = ?")
            args.append(detector)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if since is not None:
            where.append("created_ts >= ?")
            args.append(since)
        if until is not None:
            where.append("created_ts < ?")
            args.append(until)
        if cursor is not None:
            ts, _, last_id = cursor.partition(":")
            where.append("(created_ts < ? OR (created_ts = ? AND id < ?))")
            args += [float(ts), float(ts), last_id]
        sql = "SELECT body, created_ts, id FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_ts DESC, id DESC LIMIT ?"
        rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        page = self._with_responses([Alert.from_json(r[0]) for r in rows[:limit]])
        nxt = f"{rows[limit - 1][1]!r}:{rows[limit - 1][2]}" if len(rows) > limit else None
        return page, nxt

    def purge(self, older_than: float) -> int:
        """Retention: delete alerts created before ``older_than`` (unix time) with no pending delivery."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM alerts WHERE created_ts < ? AND id NOT IN "
                "(SELECT alert_id FROM outbox WHERE state = 'pending')", (older_than,))
            self._db.execute("DELETE FROM alert_addresses WHERE alert_id NOT IN (SELECT id FROM alerts)")
            return int(cur.rowcount)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])

    # -- outbox ----------------------------------------------------------------------------

    def enqueue(self, alert: Alert, subscription: str, url: str, body: bytes | None = None,
                key: str | None = None) -> bool:
        """Queue ``alert`` (at its current status) for ``subscription``, as ``body`` (default: the alert
        JSON); False if already queued. ``key`` (default: the status) names the delivery: one per
        alert, key and subscription."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox (alert_id, alert_status, subscription, url, body, state, next_ts, "
                "created_ts) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (alert.id, key or alert.status, subscription, url, body if body is not None else alert.to_json(),
                 time.time(), time.time()),
            )
            return cur.rowcount == 1

    def due(self, now: float, limit: int = 100, exclude: Collection[str] = ()) -> list[OutboxItem]:
        """Pending items due at ``now``, oldest first, leaving out the subscriptions in ``exclude``."""
        skip = list(exclude)
        rows = self._db.execute(
            "SELECT seq, alert_id, alert_status, subscription, url, body, attempts FROM outbox "
            f"WHERE state = 'pending' AND next_ts <= ? AND subscription NOT IN ({','.join('?' * len(skip))}) "
            "ORDER BY next_ts, seq LIMIT ?", (now, *skip, limit)).fetchall()
        return [OutboxItem(*r) for r in rows]

    def next_due(self) -> float | None:
        row = self._db.execute("SELECT MIN(next_ts) FROM outbox WHERE state = 'pending'").fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def settle(self, delivered: list[int], retries: list[tuple[int, float, str]],
               dead: list[tuple[int, str]]) -> None:
        """Record a batch of delivery outcomes in one transaction (one fsync, not one per item).
        A crash before the commit only means those items are delivered again: at least once."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, "
                                     "last_error = NULL WHERE seq = ?", [(s,) for s in delivered])
                self._db.executemany("UPDATE outbox SET attempts = attempts + 1, next_ts = ?, last_error = ? "
                                     "WHERE seq = ?", [(t, e, s) for s, t, e in retries])
                self._db.executemany("UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ? "
                                     "WHERE seq = ?", [(e, s) for s, e in dead])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def delivered(self, seq: int) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, last_error = NULL "
                             "WHERE seq = ?", (seq,))

    def retry(self, seq: int, next_ts: float, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, next_ts = ?, last_error = ? WHERE seq = ?",
                             (next_ts, error, seq))

    def dead(self, seq: int, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ? "
                             "WHERE seq = ?", (error, seq))

    def requeue(self, seq: int) -> bool:
        """Send a dead letter again."""
        with self._lock:
            cur = self._db.execute("UPDATE outbox SET state = 'pending', next_ts = ?, attempts = 0 "
                                   "WHERE seq = ? AND state = 'dead'", (time.time(), seq))
            return cur.rowcount == 1

    def outbox_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        return {"pending": 0, "delivered": 0, "dead": 0} | {r[0]: int(r[1]) for r in rows}

    def dead_letters(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT seq, alert_id, alert_status, subscription, url, attempts, last_error "
                                "FROM outbox WHERE state = 'dead' ORDER BY seq").fetchall()
        keys = ("seq", "alert_id", "alert_status", "subscription", "url", "attempts", "last_error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def pending_subscriptions(self) -> set[str]:
        """The subscriptions that have deliveries waiting."""
        rows = self._db.execute("SELECT DISTINCT subscription FROM outbox WHERE state = 'pending'").fetchall()
        return {str(r[0]) for r in rows}

    def drop_pending(self, subscription: str, reason: str) -> int:
        """Move a subscription's pending deliveries to the dead letters (it was deleted)."""
        with self._lock:
            cur = self._db.execute("UPDATE outbox SET state = 'dead', last_error = ? "
                                   "WHERE subscription = ? AND state = 'pending'", (reason, subscription))
            return int(cur.rowcount)

    def defer(self, items: list[tuple[int, float]]) -> None:
        """Push deliveries to a later time without counting an attempt (a local rate limit)."""
        with self._lock:
            self._db.executemany("UPDATE outbox SET next_ts = ? WHERE seq = ?", [(t, s) for s, t in items])

    # -- subscriptions made through the API ------------------------------------------------

    # -- subscriptions and monitors made through the API (the same shape: a name and a body) ----

    def subscriptions(self) -> list[dict[str, Any]]:
        return self._named("subscriptions")

    def save_subscription(self, name: str, body: dict[str, Any]) -> bool:
        """Create or replace; True if it is new."""
        return self._save_named("subscriptions", name, body)

    def delete_subscription(self, name: str) -> bool:
        return self._delete_named("subscriptions", name)

    def monitors(self) -> list[dict[str, Any]]:
        return self._named("monitors")

    def save_monitor(self, name: str, body: dict[str, Any]) -> bool:
        """Create or replace; True if it is new."""
        return self._save_named("monitors", name, body)

    def delete_monitor(self, name: str) -> bool:
        return self._delete_named("monitors", name)

    def _named(self, table: Named) -> list[dict[str, Any]]:
        return [orjson.loads(b) for (b,) in self._db.execute(f"SELECT body FROM {table} ORDER BY name")]

    def _save_named(self, table: Named, name: str, body: dict[str, Any]) -> bool:
        with self._lock:
            new = self._db.execute(f"SELECT 1 FROM {table} WHERE name = ?", (name,)).fetchone() is None
            self._db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)",
                             (name, orjson.dumps(body), time.time()))
            return new

    def _delete_named(self, table: Named, name: str) -> bool:
        with self._lock:
            return self._db.execute(f"DELETE FROM {table} WHERE name = ?", (name,)).rowcount == 1

    def iter_alerts(self) -> Iterator[Alert]:
        for (body,) in self._db.execute("SELECT body FROM alerts ORDER BY created_ts, id"):
            yield Alert.from_json(body)


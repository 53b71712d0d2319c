"""The embedded store for ``make run``: one SQLite file (Python's own sqlite3), no service to run.

Every reservation is one ``BEGIN IMMEDIATE`` transaction: SQLite takes its write lock first, so two
threads (or two processes on the same file) never both read a counter below its limit and both add.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from heimdall.governance.store import Claim, UsageRecord, counter_expiry, fits
from heimdall.governance.windows import Window

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    counter TEXT NOT NULL, window_start REAL NOT NULL, used INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (counter, window_start));
CREATE TABLE IF NOT EXISTS usage (
    ts REAL NOT NULL, event_id TEXT NOT NULL, key_id TEXT NOT NULL, route TEXT NOT NULL,
    model_requested TEXT, provider TEXT, model TEXT, audio_seconds REAL NOT NULL, status INTEGER NOT NULL,
    latency_ms REAL NOT NULL, fallback_index INTEGER, cost REAL NOT NULL, cache_hit INTEGER NOT NULL,
    expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS usage_by_time ON usage (ts);
"""
_FIELDS = UsageRecord._fields
_SWEEP_EVERY = 500  # usage writes between removals of expired rows


class SqliteStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._writes = 0
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        """One connection per thread (sqlite3 connections are not shared between threads)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def reserve(self, claims: Sequence[Claim], now: float) -> Claim | None:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            for claim in claims:
                if not fits(self._used(db, claim.counter, claim.window), claim):
                    db.execute("ROLLBACK")
                    return claim
            self._add(db, claims)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return None

    def adjust(self, claims: Sequence[Claim], now: float) -> None:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            self._add(db, claims)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def used(self, counter: str, window: Window) -> int:
        return self._used(self._connection(), counter, window)

    @staticmethod
    def _used(db: sqlite3.Connection, counter: str, window: Window) -> int:
        row = db.execute(
            "SELECT used FROM counters WHERE counter = ? AND window_start = ?", (counter, window.start)
        ).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _add(db: sqlite3.Connection, claims: Sequence[Claim]) -> None:
        db.executemany(
            "INSERT INTO counters (counter, window_start, used, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (counter, window_start) DO UPDATE SET used = used + excluded.used",
            [(c.counter, c.window.start, c.units, counter_expiry(c.window)) for c in claims],
        )

    def record(self, record: UsageRecord, expires: float) -> None:
        db = self._connection()
        # a record without a key is stored with '' (the column predates them, and is NOT NULL)
        values = [getattr(record, name) if name != "key_id" else record.key_id or "" for name in _FIELDS]
        db.execute(
            f"INSERT INTO usage ({', '.join(_FIELDS)}, expires) VALUES ({', '.join('?' * (len(_FIELDS) + 1))})",  # noqa: S608 - column names are ours
            (*values, expires),
        )
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            db.execute("DELETE FROM usage WHERE expires < ?", (record.ts,))
            db.execute("DELETE FROM counters WHERE expires < ?", (record.ts,))

    def records(self, start: float, end: float) -> Iterator[UsageRecord]:
        db = self._connection()
        rows = db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM usage WHERE ts >= ? AND ts < ? ORDER BY ts",  # noqa: S608
            (start, end),
        )
        for row in rows:
            values = dict(zip(_FIELDS, row, strict=True))
            values["cache_hit"] = bool(values["cache_hit"])
            values["key_id"] = values["key_id"] or None
            yield UsageRecord(**values)

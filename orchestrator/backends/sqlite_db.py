"""One SQLite file shared by the local store, queue and registry, safe across processes.

WAL mode lets workers write progress while the API reads; ``BEGIN IMMEDIATE``
takes the write lock up front so read-modify-write transactions never deadlock.
Each thread gets its own connection (sqlite3 connections are not thread-safe).

A writer waits at most ``timeout`` (``STORE_TIMEOUT``) for the write lock,
measured from its own start, then fails with ``sqlite3.OperationalError``
(the stores turn it into StoreError; REST answers 503). Within one process
writers first queue on a Python lock per file, so they are handed the file in
turn; waiting there counts against the same deadline, so ten writers behind a
file locked by another process all fail after about ``timeout``, not one after
another.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# Writers of one process queue on a Python lock per database file: SQLite's busy handler
# sleeps in steps of up to 100 ms, so threads contending on it wake late; the lock hands
# the file over at once. Other processes still wait through the busy timeout.
_WRITE_LOCKS: dict[Path, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path.resolve(), threading.Lock())


def default_timeout() -> float:
    """For databases opened without Settings (the queue, the registry, tools): the same variables
    Settings.STORE_TIMEOUT reads, else its default."""
    raw = os.environ.get("STORE_TIMEOUT") or os.environ.get("LAXAI_SQLITE_BUSY_TIMEOUT") or "10"
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 10.0


# A busy timeout this close to the one a connection has already is left as it is.
BUSY_SLACK_SECONDS = 0.05


class WriteTimeout(sqlite3.OperationalError):
    """No write lock within the timeout: the database is locked (by another process, or a long writer)."""


class SqliteDatabase:
    """Per-thread connections to one database file, plus a schema applied once."""

    def __init__(self, path: Path | str, schema: str = "", timeout: float | None = None):
        self.path = Path(path)
        self.timeout = default_timeout() if timeout is None else max(0.0, timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._write_lock = _write_lock(self.path)
        if schema:
            self.apply(schema)

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            self._local.busy = None
            self._busy(conn, self.timeout)
            with self._guard:
                self._all.append(conn)
        return conn

    def apply(self, schema: str) -> None:
        with self.write() as conn:
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def _busy(self, conn: sqlite3.Connection, seconds: float) -> None:
        """Let SQLite's busy handler wait ``seconds`` (0: fail at once) on this thread's connection."""
        current = self._local.busy
        if current is None or abs(current - seconds) > BUSY_SLACK_SECONDS:
            conn.execute(f"PRAGMA busy_timeout={max(0, int(seconds * 1000))}")
            self._local.busy = seconds

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A transaction holding the write lock from its first statement; WriteTimeout when the
        lock is not ours within ``timeout`` of this call."""
        deadline = time.monotonic() + self.timeout
        conn = self.connection()
        if not self._write_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise WriteTimeout(f"database is locked: no write lock within {self.timeout:g} s")
        try:
            self._busy(conn, deadline - time.monotonic())
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise WriteTimeout(f"database is locked: no write lock within {self.timeout:g} s") from exc
                raise
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
        finally:
            self._write_lock.release()
            self._busy(conn, self.timeout)  # reads on this connection keep the full wait

    def read(self) -> sqlite3.Connection:
        return self.connection()

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()


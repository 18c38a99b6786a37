"""One SQLite file shared by the local store, queue and registry, safe across processes.

WAL mode lets workers write progress while the API reads; ``BEGIN IMMEDIATE``
takes the write lock up front so read-modify-write transactions never deadlock;
a generous busy timeout makes concurrent writers wait instead of failing. Each
thread gets its own connection (sqlite3 connections are not thread-safe).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
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


# How long a writer waits for the lock before failing; LAXAI_SQLITE_BUSY_TIMEOUT overrides
# (the fault tests shorten it to provoke store errors).
BUSY_TIMEOUT_SECONDS = float(os.environ.get("LAXAI_SQLITE_BUSY_TIMEOUT", "30"))


class SqliteDatabase:
    """Per-thread connections to one database file, plus a schema applied once."""

    def __init__(self, path: Path | str, schema: str = ""):
        self.path = Path(path)
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
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def apply(self, schema: str) -> None:
        with self.write() as conn:
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A transaction holding the write lock from its first statement."""
        conn = self.connection()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def read(self) -> sqlite3.Connection:
        return self.connection()

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()


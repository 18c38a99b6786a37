"""When each job write happened, in a local (SQLite) store: a trigger stamps every change-feed row.

The change feed (``job_events``) carries no time, and a test that polls it sees
quick writes together. A trigger on it records SQLite's clock inside each write's
own transaction, whichever process writes (the service, the dispatcher, a worker
subprocess), so the gaps between a job's writes can be checked exactly.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS test_write_times (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS test_stamp_job_writes AFTER INSERT ON job_events BEGIN
    INSERT INTO test_write_times (task_id, kind, at)
    VALUES (NEW.task_id, NEW.kind, (julianday('now') - 2440587.5) * 86400.0);
END;
"""


def install(db_path: Path) -> None:
    """Stamp every later job write in the database at ``db_path`` (its store must exist)."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        conn.executescript(SCHEMA)
    finally:
        conn.close()


def writes(db_path: Path, task_id: str) -> list[tuple[str, float]]:
    """(kind, unix time) of each write to the job since ``install``, in commit order."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        rows = conn.execute("SELECT kind, at FROM test_write_times WHERE task_id = ? ORDER BY seq",
                            (task_id,)).fetchall()
    finally:
        conn.close()
    return [(kind, at) for kind, at in rows]


def gaps(stamped: list[tuple[str, float]]) -> list[tuple[str, str, float]]:
    """(kind, next kind, seconds between them) for each pair of consecutive writes."""
    return [(a, b, round(tb - ta, 3)) for (a, ta), (b, tb) in zip(stamped, stamped[1:])]

"""SQLite ``slack_threads``: one row per job in the local database file (the job store's file)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from orchestrator.backends.sqlite_db import SqliteDatabase
from orchestrator.stores.base import StoreError

from bot.threads.base import SlackThread, SlackThreads, changed

SCHEMA = """
CREATE TABLE IF NOT EXISTS slack_threads (
    task_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
)
"""


class SqliteSlackThreads(SlackThreads):
    """Compare-and-set by doing the read, ``fn`` and the write under the file's write lock."""

    def __init__(self, path: Path | str, timeout: float | None = None):
        self.db = SqliteDatabase(path, SCHEMA, timeout=timeout)

    def get(self, task_id: str) -> SlackThread | None:
        try:
            row = self.db.read().execute("SELECT data FROM slack_threads WHERE task_id = ?", (task_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"reading the Slack thread of {task_id} failed: {exc}") from exc
        return SlackThread.from_dict(json.loads(row["data"])) if row else None

    def update(self, task_id: str, fn: Callable[[SlackThread], SlackThread | None],
               seed: SlackThread | None = None) -> SlackThread | None:
        try:
            with self.db.write() as conn:
                row = conn.execute("SELECT data FROM slack_threads WHERE task_id = ?", (task_id,)).fetchone()
                current = SlackThread.from_dict(json.loads(row["data"])) if row else (seed or SlackThread(task_id))
                new = changed(current, fn(current))
                if new is not None:
                    conn.execute("INSERT OR REPLACE INTO slack_threads (task_id, version, data) VALUES (?, ?, ?)",
                                 (task_id, new.version, json.dumps(new.to_dict(), separators=(",", ":"))))
                return new
        except sqlite3.Error as exc:
            raise StoreError(f"storing the Slack thread of {task_id} failed: {exc}") from exc

    def close(self) -> None:
        self.db.close()

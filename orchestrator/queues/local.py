"""Local JobQueue: a table in the SQLite file, so queued messages survive a restart.

Pulling leases a message for ``ack_deadline`` seconds (like Pub/Sub's ack
deadline); unacked messages come back after it with their delivery count raised.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from orchestrator.queues.base import JobQueue, QueueMessage
from orchestrator.backends.sqlite_db import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    visible_at REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 0,
    lease TEXT
);
CREATE INDEX IF NOT EXISTS queue_visible ON queue_messages (visible_at, id)
"""


class LocalJobQueue(JobQueue):
    """A durable queue in ``<LAXAI_HOME>/laxai.db``."""

    def __init__(self, path: Path | str, ack_deadline: float = 60.0, poll_interval: float = 0.05):
        self.db = SqliteDatabase(path, SCHEMA)
        self.ack_deadline = ack_deadline
        self.poll_interval = poll_interval
        self._published = threading.Condition()

    def publish(self, task_id: str, **attributes: str) -> str:
        with self.db.write() as conn:
            cursor = conn.execute(
                "INSERT INTO queue_messages (task_id, attributes, visible_at) VALUES (?, ?, ?)",
                (task_id, json.dumps(attributes), time.time()),
            )
            message_id = str(cursor.lastrowid)
        with self._published:  # wake a puller in this process at once
            self._published.notify_all()
        return message_id

    def _take(self, max_messages: int) -> list[QueueMessage]:
        now = time.time()
        with self.db.write() as conn:
            rows = conn.execute(
                "SELECT id, task_id, attributes, deliveries FROM queue_messages WHERE visible_at <= ? "
                "ORDER BY id LIMIT ?",
                (now, int(max_messages)),
            ).fetchall()
            taken = []
            for row in rows:
                lease = f"{row['id']}:{row['deliveries'] + 1}"
                conn.execute(
                    "UPDATE queue_messages SET visible_at = ?, deliveries = deliveries + 1, lease = ? WHERE id = ?",
                    (now + self.ack_deadline, lease, row["id"]),
                )
                taken.append(QueueMessage(lease, row["task_id"], row["deliveries"] + 1, json.loads(row["attributes"])))
            return taken

    def pull(self, max_messages: int = 10, timeout: float = 1.0) -> list[QueueMessage]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            messages = self._take(max_messages)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            with self._published:  # another process may publish too, so also poll
                self._published.wait(min(self.poll_interval, remaining))

    def ack(self, ack_id: str) -> None:
        with self.db.write() as conn:  # only the current lease may ack (an expired one was redelivered)
            conn.execute("DELETE FROM queue_messages WHERE lease = ?", (ack_id,))

    def nack(self, ack_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE queue_messages SET visible_at = ?, lease = NULL WHERE lease = ?", (time.time(), ack_id))

    def depth(self) -> int:
        """Messages not yet acked (for status and tests)."""
        return int(self.db.read().execute("SELECT COUNT(*) FROM queue_messages").fetchone()[0])

    def close(self) -> None:
        self.db.close()

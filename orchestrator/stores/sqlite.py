"""SQLite JobStore: the local backend's job records and change feed, in one file.

Every update is one ``BEGIN IMMEDIATE`` transaction that reads the record, applies
the transition, writes it with version+1 and appends the change to ``job_events``
(the feed a notifier follows, in commit order). Safe with several processes.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.domain.job import Job, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.backends.sqlite_db import SqliteDatabase
from orchestrator.stores.base import ChangeEvent, JobStore, Mutation, PollingWatch, StoreError, Watch
from orchestrator.stores.write_budget import WriteBudget

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    task_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    channel TEXT,
    idempotency_key TEXT,
    version INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, priority DESC, created_at);
CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs (tenant_id, created_at DESC);
-- Each tenant's queued jobs in dispatch order (fair share: queued_by_tenant, count_queued).
CREATE INDEX IF NOT EXISTS jobs_tenant_queue ON jobs (status, tenant_id, priority DESC, created_at);
-- Completed jobs by shape and by dataset: the history estimates learn from (completed_like, completed_on).
-- Indexes on the record's own fields (expressions), so older databases need no new columns.
CREATE INDEX IF NOT EXISTS jobs_shape ON jobs (status, json_extract(data, '$.spec.model_params.architecture'),
    json_extract(data, '$.spec.model_params.input_size'), created_at DESC);
CREATE INDEX IF NOT EXISTS jobs_dataset ON jobs (tenant_id, status, json_extract(data, '$.spec.dataset'),
    created_at DESC);
CREATE TABLE IF NOT EXISTS job_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
-- When each job was last written (kept only with a write budget: stores/write_budget.py).
CREATE TABLE IF NOT EXISTS job_writes (
    task_id TEXT PRIMARY KEY,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
)
"""

ACTIVE = (JobStatus.RUNNING.value, JobStatus.CANCELLING.value)
# The feed keeps this many recent events; older ones are pruned now and then.
EVENTS_KEPT = 50_000


class SqliteJobStore(JobStore):
    """Job records in ``<LAXAI_HOME>/laxai.db``."""

    def __init__(self, path: Path | str, watch_interval: float = 0.1, write_gap: float = 0.0,
                 timeout: float | None = None):
        self.db = SqliteDatabase(path, SCHEMA, timeout=timeout)  # timeout: STORE_TIMEOUT (sqlite_db)
        self.budget = WriteBudget(write_gap)
        self.watch_interval = watch_interval
        self._writes = 0

    # -- writes ---------------------------------------------------------------

    def _row_values(self, job: Job) -> tuple[Any, ...]:
        return (
            job.task_id,
            job.tenant_id,
            job.status.value,
            job.priority,
            job.created_at.timestamp(),
            job.origin.channel,
            job.idempotency_key,
            job.version,
            job.model_dump_json(),
        )

    def _append_event(self, conn: sqlite3.Connection, job: Job, kind: str, data: str) -> None:
        conn.execute(
            "INSERT INTO job_events (task_id, version, kind, data) VALUES (?, ?, ?, ?)",
            (job.task_id, job.version, kind, data),
        )
        self._writes += 1
        if self._writes % 1000 == 0:
            conn.execute("DELETE FROM job_events WHERE seq <= (SELECT MAX(seq) FROM job_events) - ?", (EVENTS_KEPT,))

    def create(self, job: Job) -> tuple[Job, bool]:
        keyed = job.request_hash() if job.idempotency_key is not None else None
        job = job.model_copy(update={"version": 1, "updated_at": utcnow(), "idempotency_hash": keyed})
        try:
            with self.db.write() as conn:
                if job.idempotency_key is not None:
                    row = conn.execute(
                        "SELECT data FROM jobs WHERE tenant_id = ? AND idempotency_key = ?",
                        (job.tenant_id, job.idempotency_key),
                    ).fetchone()
                    if row:  # the same request again, or IdempotencyKeyReused
                        return Job.model_validate_json(row["data"]).replayed_by(job), False
                values = self._row_values(job)
                conn.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
                self._append_event(conn, job, "created", values[-1])
                self._stamp(conn, job.task_id)
        except sqlite3.IntegrityError as exc:
            existing = self.get(job.task_id)
            if existing is not None:
                return existing, False
            raise StoreError(f"could not store job {job.task_id}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return job, True

    def _stamp(self, conn: sqlite3.Connection, task_id: str) -> None:
        """Record the time of this write (only with a write budget: nothing to keep otherwise)."""
        if self.budget.on:
            conn.execute("INSERT INTO job_writes (task_id, at) VALUES (?, ?) "
                         "ON CONFLICT(task_id) DO UPDATE SET at = excluded.at", (task_id, time.time()))

    def _keep_budget(self, conn: sqlite3.Connection, task_id: str, waited_for: float | None) -> None:
        if not self.budget.on:
            return
        row = conn.execute("SELECT at FROM job_writes WHERE task_id = ?", (task_id,)).fetchone()
        last = None if row is None else row["at"]
        self.budget.check(last, last, waited_for)

    def update(self, task_id: str, fn: Mutation, kind: str = "update") -> Job | None:
        # The wait between tries is out of the transaction: the write lock is free meanwhile.
        return self.budget.keep_gap(lambda waited_for: self._update_once(task_id, fn, kind, waited_for))

    def _update_once(self, task_id: str, fn: Mutation, kind: str, waited_for: float | None) -> Job | None:
        try:
            with self.db.write() as conn:
                row = conn.execute("SELECT data FROM jobs WHERE task_id = ?", (task_id,)).fetchone()
                if row is None:
                    return None
                current = Job.model_validate_json(row["data"])
                changed = fn(current)
                if changed is None or changed == current:
                    return None
                self._keep_budget(conn, task_id, waited_for)
                changed = changed.model_copy(update={"version": current.version + 1})
                values = self._row_values(changed)
                conn.execute(
                    "UPDATE jobs SET status = ?, priority = ?, channel = ?, version = ?, data = ? "
                    "WHERE task_id = ? AND version = ?",
                    (values[2], values[3], values[5], values[7], values[8], task_id, current.version),
                )
                self._append_event(conn, changed, kind, values[-1])
                self._stamp(conn, task_id)
                return changed
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    # -- reads ----------------------------------------------------------------

    def _jobs(self, sql: str, params: Iterable[Any] = ()) -> list[Job]:
        try:
            rows = self.db.read().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return [Job.model_validate_json(r["data"]) for r in rows]

    def get(self, task_id: str) -> Job | None:
        found = self._jobs("SELECT data FROM jobs WHERE task_id = ?", (task_id,))
        return found[0] if found else None

    def list(self, *, tenant_id: str | None = None, statuses: Iterable[JobStatus] | None = None,
             channel: str | None = None, limit: int = 50) -> list[Job]:
        clauses, params = [], []
        if tenant_id is not None:
            clauses.append("tenant_id = ?")
            params.append(tenant_id)
        if statuses is not None:
            names = [JobStatus(s).value for s in statuses]
            clauses.append(f"status IN ({','.join('?' * len(names))})")
            params.extend(names)
        if channel is not None:
            clauses.append("channel = ?")
            params.append(channel)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(int(limit))
        return self._jobs(f"SELECT data FROM jobs {where} ORDER BY created_at DESC, rowid DESC LIMIT ?", params)

    def queued(self, limit: int = 100) -> list[Job]:
        return self._jobs(
            "SELECT data FROM jobs WHERE status = ? ORDER BY priority DESC, created_at, rowid LIMIT ?",
            (JobStatus.QUEUED.value, int(limit)),
        )

    def queued_by_tenant(self, per_tenant: int, skip: Collection[str] = ()) -> dict[str, list[Job]]:
        # A loose index scan: the tenants with queued jobs one index seek apart (MIN past the last),
        # then each tenant's first jobs from the same index; only the records picked are read.
        skipped = sorted(set(skip))
        jobs = self._jobs(
            "WITH RECURSIVE tenants(id) AS ("
            "  SELECT MIN(tenant_id) FROM jobs WHERE status = ?1"
            "  UNION ALL SELECT (SELECT MIN(tenant_id) FROM jobs WHERE status = ?1 AND tenant_id > tenants.id)"
            "  FROM tenants WHERE tenants.id IS NOT NULL)"
            " SELECT j.data FROM tenants JOIN jobs AS j ON j.rowid IN ("
            "  SELECT rowid FROM jobs WHERE status = ?1 AND tenant_id = tenants.id"
            "  ORDER BY priority DESC, created_at, rowid LIMIT ?2)"
            f" WHERE tenants.id IS NOT NULL AND tenants.id NOT IN ({','.join('?' * len(skipped))})"
            " ORDER BY j.tenant_id, j.priority DESC, j.created_at, j.rowid",
            (JobStatus.QUEUED.value, int(per_tenant), *skipped),
        )
        found: dict[str, list[Job]] = {}
        for job in jobs:
            found.setdefault(job.tenant_id, []).append(job)
        return found

    def count_queued(self, tenant_id: str, at_most: int | None = None) -> int:
        try:
            row = self.db.read().execute(
                "SELECT COUNT(*) AS n FROM (SELECT 1 FROM jobs WHERE status = ? AND tenant_id = ? LIMIT ?)",
                (JobStatus.QUEUED.value, tenant_id, -1 if at_most is None else int(at_most))).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return int(row["n"])

    def by_idempotency_key(self, tenant_id: str, key: str) -> Job | None:
        found = self._jobs("SELECT data FROM jobs WHERE tenant_id = ? AND idempotency_key = ?", (tenant_id, key))
        return found[0] if found else None

    def active(self) -> list[Job]:
        return self._jobs("SELECT data FROM jobs WHERE status IN (?, ?)", ACTIVE)

    def completed_like(self, architecture: str, input_size: int, limit: int = 20) -> list[Job]:
        # The expressions are the jobs_shape index's, word for word, so SQLite reads it.
        return self._jobs(
            "SELECT data FROM jobs WHERE status = ? AND json_extract(data, '$.spec.model_params.architecture') = ?"
            " AND json_extract(data, '$.spec.model_params.input_size') = ? ORDER BY created_at DESC, rowid DESC"
            " LIMIT ?", (JobStatus.COMPLETED.value, architecture, int(input_size), int(limit)))

    def completed_on(self, tenant_id: str, dataset: str, limit: int = 5) -> list[Job]:
        return self._jobs(
            "SELECT data FROM jobs WHERE tenant_id = ? AND status = ? AND json_extract(data, '$.spec.dataset') = ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?", (tenant_id, JobStatus.COMPLETED.value, dataset, int(limit)))

    def created_between(self, tenant_id: str, start: datetime, end: datetime, limit: int = 2000) -> list[Job]:
        # The jobs_tenant index (tenant_id, created_at DESC) serves it.
        return self._jobs(
            "SELECT data FROM jobs WHERE tenant_id = ? AND created_at >= ? AND created_at < ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?", (tenant_id, start.timestamp(), end.timestamp(), int(limit)))

    # -- change feed ----------------------------------------------------------

    def last_cursor(self) -> int:
        row = self.db.read().execute("SELECT COALESCE(MAX(seq), 0) AS seq FROM job_events").fetchone()
        return int(row["seq"])

    def changes(self, after: int = 0, limit: int = 500) -> list[ChangeEvent]:
        """Stored changes with cursor > ``after``, oldest first."""
        rows = self.db.read().execute(
            "SELECT seq, kind, data FROM job_events WHERE seq > ? ORDER BY seq LIMIT ?", (int(after), int(limit))
        ).fetchall()
        return [ChangeEvent(r["seq"], Job.model_validate_json(r["data"]), r["kind"]) for r in rows]

    def watch(self, callback: Callable[[ChangeEvent], None], since: Any = None) -> Watch:
        cursor = [self.last_cursor() if since is None else int(since)]

        def poll() -> bool:
            events = self.changes(cursor[0])
            for event in events:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - a failing observer never stops the feed
                    log.exception("change-feed callback failed for %s", event.task_id)
                cursor[0] = event.cursor
            return len(events) > 0

        return PollingWatch(poll, self.watch_interval, name="sqlite-watch")

    # -- locks ----------------------------------------------------------------

    def try_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        stamp = now.timestamp()
        with self.db.write() as conn:
            row = conn.execute("SELECT owner, expires_at FROM locks WHERE name = ?", (name,)).fetchone()
            if row and row["owner"] != owner and row["expires_at"] > stamp:
                return False
            if row and row["owner"] == owner and row["expires_at"] - stamp > ttl / 2:
                return True  # ours with more than half of it left: no write
            conn.execute(
                "INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
                (name, owner, stamp + ttl),
            )
            return True

    def release_lock(self, name: str, owner: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))

    def close(self) -> None:
        self.db.close()


"""The JobStore contract: durable job records with compare-and-set updates and a change feed.

Implementations: ``stores.sqlite`` (local) and ``stores.firestore`` (gcp). Both pass
the same contract suite (tests/contract). Semantics follow Firestore's so the
two behave alike:

- ``update(task_id, fn)`` runs ``fn`` on the current record inside a transaction
  and writes its result only if the record did not change meanwhile (retrying
  ``fn`` on contention). ``fn`` returns None to change nothing; then no write
  happens and no event fires.
- ``watch`` delivers the newest version of each changed job, in version order
  per job. Intermediate versions may be coalesced (Firestore snapshots are).
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.domain.job import Job
from orchestrator.domain.status import JobStatus
from orchestrator.stores.write_budget import WriteBudget

Mutation = Callable[[Job], "Job | None"]


class StoreError(RuntimeError):
    """The backend failed (unreachable, quota...). Callers may retry."""


@dataclass(frozen=True)
class ChangeEvent:
    """One stored change: the job as it is after the change."""

    cursor: Any  # opaque, increasing; pass back to ``watch(since=...)`` to resume
    job: Job
    kind: str  # what the writer called the change: "created", "progress", "status:running"...

    @property
    def task_id(self) -> str:
        return self.job.task_id


class Watch(abc.ABC):
    """A running subscription to the change feed."""

    @abc.abstractmethod
    def stop(self) -> None: ...


class JobStore(abc.ABC):
    """Durable job records shared by the API, the dispatcher, workers and the notifier.

    ``budget``: ``update`` keeps the write budget (stores/write_budget.py)."""

    budget: WriteBudget = WriteBudget()

    @abc.abstractmethod
    def create(self, job: Job) -> tuple[Job, bool]:
        """Store a new job. With an ``idempotency_key`` already used by the same
        tenant, store nothing and return (the existing job, False)."""

    @abc.abstractmethod
    def get(self, task_id: str) -> Job | None: ...

    @abc.abstractmethod
    def update(self, task_id: str, fn: Mutation, kind: str = "update") -> Job | None:
        """Compare-and-set: apply ``fn`` atomically; return the new job, or None if
        ``fn`` declined (or the job does not exist). Fires one event when it changed.
        Waits for the write budget first (see the class)."""

    @abc.abstractmethod
    def list(self, *, tenant_id: str | None = None, statuses: Iterable[JobStatus] | None = None,
             channel: str | None = None, limit: int = 50) -> list[Job]:
        """Newest first."""

    @abc.abstractmethod
    def queued(self, limit: int = 100) -> list[Job]:
        """Queued jobs in dispatch order: highest priority first, then oldest."""

    @abc.abstractmethod
    def queued_by_tenant(self, per_tenant: int, skip: Collection[str] = ()) -> dict[str, list[Job]]:
        """For each tenant with queued jobs, except the tenants in ``skip``: its first ``per_tenant``
        queued jobs in dispatch order (highest priority first, then oldest).

        What the dispatcher shares free slots from (``domain.fair_share``): however many jobs one
        tenant has queued, every other tenant's next jobs are in the answer. Its cost grows with
        the number of tenants that have queued jobs times ``per_tenant``, not with the number of
        queued jobs."""

    @abc.abstractmethod
    def count_queued(self, tenant_id: str, at_most: int | None = None) -> int:
        """How many of the tenant's jobs are queued, counting no further than ``at_most`` when given
        (counted in an index: no record is read)."""

    @abc.abstractmethod
    def by_idempotency_key(self, tenant_id: str, key: str) -> Job | None:
        """The tenant's job stored with this idempotency key, if any."""

    @abc.abstractmethod
    def active(self) -> list[Job]:
        """Jobs that hold a worker slot (running or cancelling)."""

    @abc.abstractmethod
    def completed_like(self, architecture: str, input_size: int, limit: int = 20) -> list[Job]:
        """Completed jobs of any tenant with this architecture and input size, newest first (by
        ``created_at``), at most ``limit``: the history estimates learn from (orchestrator/estimates.py)."""

    @abc.abstractmethod
    def completed_on(self, tenant_id: str, dataset: str, limit: int = 5) -> list[Job]:
        """The tenant's completed jobs on this ``spec.dataset`` string, newest first, at most ``limit``
        (what its dataset's image count was)."""

    @abc.abstractmethod
    def created_between(self, tenant_id: str, start: datetime, end: datetime, limit: int = 2000) -> list[Job]:
        """The tenant's jobs created in [start, end), newest first, at most ``limit``, any status: what a
        budget period's spend is summed over (orchestrator/spending.py)."""

    @abc.abstractmethod
    def watch(self, callback: Callable[[ChangeEvent], None], since: Any = None) -> Watch:
        """Call ``callback`` for every change after ``since`` (None: from now on;
        backends may replay current records first). Callback errors are logged, never
        stop the feed."""

    @abc.abstractmethod
    def try_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        """Take or renew a named lease (e.g. the dispatcher's) until now+ttl.

        The owner's renewal writes only once at most half of ``ttl`` is left (a lock
        renewed every pass would be one document write per pass); so a True means the
        lease is held for at least ``ttl/2`` from ``now``."""

    @abc.abstractmethod
    def release_lock(self, name: str, owner: str) -> None: ...

    def close(self) -> None:
        """Release connections."""


class PollingWatch(Watch):
    """Runs a poll function on a thread until stopped; for stores without push."""

    def __init__(self, poll: Callable[[], bool], interval: float, name: str = "store-watch"):
        self._stop = threading.Event()
        self._poll = poll
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self._poll()
            except Exception:  # noqa: BLE001 - a broken poll must not end the feed
                import logging

                logging.getLogger(__name__).exception("change feed poll failed")
                busy = False
            if not busy:
                self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

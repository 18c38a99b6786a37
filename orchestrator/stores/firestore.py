"""Firestore JobStore: the gcp backend's job records and change feed.

One document per job in ``FIRESTORE_COLLECTION`` (id = task_id), laid out as
``stores.job_document`` says.

Semantics match ``SqliteJobStore`` (the contract suite runs against both):

- ``update`` reads and writes inside one Firestore transaction, retried on
  contention; version+1 per change; ``fn`` returning None (or an equal job)
  writes nothing, so no change event fires.
- ``create`` with an ``idempotency_key`` also creates
  ``<collection>_idempotency/<sha256(tenant, key)>`` in the same transaction, so
  two concurrent submissions with one key store one job.
- ``watch`` follows ``on_snapshot`` of the collection; ``last_change`` names the
  kind of the newest change. Snapshots coalesce quick successive writes (allowed by
  the contract: the newest version per job, in version order).
- The write budget (stores/write_budget.py): an update checks the document's
  ``update_time`` (the server's commit time of its previous write) against it.
- Locks live in a ``locks`` collection, taken and released in transactions; the
  owner renews (writes) only once at most half of the lease is left.

Contention: threads of one process that write the same document queue on an
in-process lock (``Stripes``) before their transaction, so they never collide
in the server; only writers in different processes do, and those transactions
are retried. (The emulator resolves each collision with a ~2 s lock wait, so
in-process collisions would otherwise cost seconds each.)

Every ``update`` is one write to the job's document, which the write budget
spaces out: keep per-job writes low (the worker throttles progress,
``PROGRESS_INTERVAL``, and heartbeats, ``LEASE_SECONDS``). Do not add per-batch writes.

Production indexes (the emulator needs none): ``firestore.indexes.json`` at the repository
root declares the composite indexes these queries need and exempts the ``job`` map from
single-field indexing (deploy.sh creates them). A new query or filter combination needs its
index there: the tests record every query shape sent to the emulator and fail, naming the
query, when Firestore would refuse it (tests/support/firestore_queries.py).
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.watch import ChangeType

from orchestrator.domain.job import Job, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.stores import job_document
from orchestrator.stores.base import ChangeEvent, JobStore, Mutation, StoreError, Watch
from orchestrator.stores.job_document import JOB_FIELD, KIND_FIELD
from orchestrator.stores.write_budget import WriteBudget

log = logging.getLogger(__name__)

ACTIVE = [JobStatus.RUNNING.value, JobStatus.CANCELLING.value]
# Whole-transaction retries on contention (each also retries its commit itself).
TRANSACTION_ATTEMPTS = 25
WATCH_READY_TIMEOUT = 30.0
# Queued jobs read per query when looking for each tenant's next jobs (queued_by_tenant).
QUEUE_PAGE = 20
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,500}$")


def doc_id(*parts: str) -> str:
    """A document id for arbitrary text: the text itself when safe, else a hash."""
    if len(parts) == 1 and _SAFE_ID.match(parts[0]) and not parts[0].startswith("__") and parts[0].strip("."):
        return parts[0]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def run_transaction(client: firestore.Client, body: Callable[[Any], Any], what: str = "transaction") -> Any:
    """Run ``body(transaction)`` in a Firestore transaction, retrying contention.

    ``firestore.transactional`` retries aborted commits; an abort raised by a read
    (the emulator's lock timeouts) or a lost create race lands here and the whole
    body runs again after a jittered backoff. API failures become StoreError;
    exceptions from ``body`` itself pass through unchanged.
    """
    delay = 0.01
    for _ in range(TRANSACTION_ATTEMPTS):
        try:
            return firestore.transactional(body)(client.transaction())
        except gexc.Conflict as exc:  # Aborted, AlreadyExists
            last: Exception = exc
        except ValueError as exc:  # "Failed to commit transaction in N attempts"
            if not isinstance(exc.__cause__, gexc.Conflict):
                raise
            last = exc
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(f"{what} failed: {exc}") from exc
        time.sleep(random.uniform(0, delay))
        delay = min(delay * 2, 1.0)
    raise StoreError(f"{what} failed after {TRANSACTION_ATTEMPTS} attempts under contention: {last}") from last


class Stripes:
    """A fixed set of locks picked by key: one process's writers of a document queue here."""

    def __init__(self, count: int = 64):
        self._locks = [threading.Lock() for _ in range(count)]

    def __call__(self, *key: str) -> threading.Lock:
        return self._locks[hash(key) % len(self._locks)]


def close_client(client: Any) -> None:
    """Close a Firestore client's channel (the client has no public close)."""
    close = getattr(client, "close", None)
    if callable(close):
        close()
        return
    api = getattr(client, "_firestore_api_internal", None)
    transport = getattr(api, "transport", None)
    if transport is not None:
        transport.close()


class FirestoreJobStore(JobStore):
    """Job records in a Firestore collection."""

    def __init__(self, client: firestore.Client, collection: str = "training_jobs", *,
                 locks_collection: str = "locks", close_client: bool = False, write_gap: float = 0.0):
        self.client = client
        self.budget = WriteBudget(write_gap)
        self.collection = collection
        self._jobs = client.collection(collection)
        self._keys = client.collection(f"{collection}_idempotency")
        self._locks = client.collection(locks_collection)
        self._close_client = close_client
        self._stripes = Stripes()

    # -- encoding -------------------------------------------------------------

    _encode = staticmethod(job_document.encode)
    decode_fields = staticmethod(job_document.decode_fields)

    @staticmethod
    def _decode(snapshot: Any) -> Job:
        return Job.model_validate(snapshot.get(JOB_FIELD))

    def _key_ref(self, tenant_id: str, key: str) -> Any:
        return self._keys.document(doc_id(tenant_id, key, "idempotency"))

    # -- writes ---------------------------------------------------------------

    def create(self, job: Job) -> tuple[Job, bool]:
        keyed = job.request_hash() if job.idempotency_key else None
        job = job.model_copy(update={"version": 1, "updated_at": utcnow(), "idempotency_hash": keyed})
        ref = self._jobs.document(doc_id(job.task_id))
        key_ref = self._key_ref(job.tenant_id, job.idempotency_key) if job.idempotency_key else None

        def body(tx: Any) -> tuple[Job, bool]:
            if key_ref is not None:  # every read before any write
                key = key_ref.get(transaction=tx)
                if key.exists:
                    existing = self._jobs.document(doc_id(key.get("task_id"))).get(transaction=tx)
                    if existing.exists:  # the same request again, or IdempotencyKeyReused
                        return self._decode(existing).replayed_by(job), False
            current = ref.get(transaction=tx)
            if current.exists:
                return self._decode(current), False
            tx.create(ref, self._encode(job, "created"))
            if key_ref is not None:
                tx.set(key_ref, {"tenant_id": job.tenant_id, "idempotency_key": job.idempotency_key,
                                 "task_id": job.task_id, "created_at": job.created_at,
                                 "request_hash": job.idempotency_hash})
            return job, True

        with self._stripes("key", job.tenant_id, job.idempotency_key or job.task_id):
            return run_transaction(self.client, body, f"create {job.task_id}")

    def update(self, task_id: str, fn: Mutation, kind: str = "update") -> Job | None:
        ref = self._jobs.document(doc_id(task_id))

        def attempt(waited_for: Any) -> Job | None:
            def body(tx: Any) -> Job | None:
                snapshot = ref.get(transaction=tx)
                if not snapshot.exists:
                    return None
                current = self._decode(snapshot)
                changed = fn(current)
                if changed is None or changed == current:
                    return None
                stamp = snapshot.update_time  # the server's commit time of the previous write
                self.budget.check(stamp, stamp.timestamp() if stamp else None, waited_for)
                changed = changed.model_copy(update={"version": current.version + 1})
                tx.set(ref, self._encode(changed, kind))
                return changed

            with self._stripes("job", task_id):
                return run_transaction(self.client, body, f"update {task_id}")

        # Between tries nothing is held: neither the transaction nor the stripe.
        return self.budget.keep_gap(attempt)

    # -- reads ----------------------------------------------------------------

    def _run(self, query: Any) -> list[Job]:
        try:
            return [self._decode(s) for s in query.stream()]
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(str(exc)) from exc

    def get(self, task_id: str) -> Job | None:
        try:
            snapshot = self._jobs.document(doc_id(task_id)).get()
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(str(exc)) from exc
        return self._decode(snapshot) if snapshot.exists else None

    def list(self, *, tenant_id: str | None = None, statuses: Iterable[JobStatus] | None = None,
             channel: str | None = None, limit: int = 50) -> list[Job]:
        query: Any = self._jobs
        if tenant_id is not None:
            query = query.where(filter=FieldFilter("tenant_id", "==", tenant_id))
        if statuses is not None:
            names = sorted({JobStatus(s).value for s in statuses})
            if not names:
                return []
            query = query.where(filter=FieldFilter("status", "in", names))
        if channel is not None:
            query = query.where(filter=FieldFilter("channel", "==", channel))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(int(limit))
        return self._run(query)

    def queued(self, limit: int = 100) -> list[Job]:
        query = (
            self._jobs.where(filter=FieldFilter("status", "==", JobStatus.QUEUED.value))
            .order_by("priority", direction=firestore.Query.DESCENDING)
            .order_by("created_at", direction=firestore.Query.ASCENDING)
            .limit(int(limit))
        )
        return self._run(query)

    def queued_by_tenant(self, per_tenant: int, skip: Collection[str] = ()) -> dict[str, list[Job]]:
        # Firestore has no DISTINCT: walk the queue in (tenant_id, priority DESC, created_at) order a page
        # at a time, starting each page past the tenants already in hand. A page holds all the jobs of
        # every tenant but its last, so short queues cost a fraction of a query each, a long one a query.
        found: dict[str, list[Job]] = {}
        after: str | None = None
        page = max(int(per_tenant), QUEUE_PAGE)
        while per_tenant > 0:
            query = self._jobs.where(filter=FieldFilter("status", "==", JobStatus.QUEUED.value))
            if after is not None:
                query = query.where(filter=FieldFilter("tenant_id", ">", after))
            query = (query.order_by("tenant_id").order_by("priority", direction=firestore.Query.DESCENDING)
                     .order_by("created_at").limit(page))
            jobs = self._run(query)
            groups: dict[str, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.tenant_id, []).append(job)
            cut = jobs[-1].tenant_id if len(jobs) == page else None  # may have more jobs past the page
            for tenant, group in groups.items():
                if tenant == cut and len(group) < per_tenant:
                    break  # the page ended inside this tenant's first jobs: the next page starts with it
                if tenant not in skip:
                    found[tenant] = group[:per_tenant]
                after = tenant
            if len(jobs) < page:
                return found
        return found

    def count_queued(self, tenant_id: str, at_most: int | None = None) -> int:
        query = (self._jobs.where(filter=FieldFilter("status", "==", JobStatus.QUEUED.value))
                 .where(filter=FieldFilter("tenant_id", "==", tenant_id)))
        if at_most is not None:  # billed by index entries counted: one read per 1000
            query = query.limit(int(at_most))
        try:
            (result,), = query.count(alias="queued").get()
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(str(exc)) from exc
        return int(result.value)

    def by_idempotency_key(self, tenant_id: str, key: str) -> Job | None:
        try:
            entry = self._key_ref(tenant_id, key).get()
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(str(exc)) from exc
        return self.get(entry.get("task_id")) if entry.exists else None

    def active(self) -> list[Job]:
        return self._run(self._jobs.where(filter=FieldFilter("status", "in", ACTIVE)))

    def completed_like(self, architecture: str, input_size: int, limit: int = 20) -> list[Job]:
        shape = job_document.shape_key(architecture, input_size)
        return self._run(self._jobs.where(filter=FieldFilter("status", "==", JobStatus.COMPLETED.value))
                         .where(filter=FieldFilter("shape", "==", shape))
                         .order_by("created_at", direction=firestore.Query.DESCENDING).limit(int(limit)))

    def completed_on(self, tenant_id: str, dataset: str, limit: int = 5) -> list[Job]:
        key = job_document.dataset_key(tenant_id, dataset)
        return self._run(self._jobs.where(filter=FieldFilter("status", "==", JobStatus.COMPLETED.value))
                         .where(filter=FieldFilter("dataset_key", "==", key))
                         .order_by("created_at", direction=firestore.Query.DESCENDING).limit(int(limit)))

    def created_between(self, tenant_id: str, start: datetime, end: datetime, limit: int = 2000) -> list[Job]:
        # Served by the (tenant_id, created_at DESC) index that list() uses.
        return self._run(self._jobs.where(filter=FieldFilter("tenant_id", "==", tenant_id))
                         .where(filter=FieldFilter("created_at", ">=", start))
                         .where(filter=FieldFilter("created_at", "<", end))
                         .order_by("created_at", direction=firestore.Query.DESCENDING).limit(int(limit)))

    # -- change feed ----------------------------------------------------------

    def watch(self, callback: Callable[[ChangeEvent], None], since: Any = None) -> Watch:
        return FirestoreWatch(self._jobs, callback, since)

    # -- locks ----------------------------------------------------------------

    def try_lock(self, name: str, owner: str, ttl: float, now: datetime) -> bool:
        ref = self._locks.document(doc_id(name))
        stamp = now.timestamp()

        def body(tx: Any) -> bool:
            held = ref.get(transaction=tx)
            if held.exists and held.get("owner") != owner and held.get("expires_at") > stamp:
                return False
            if held.exists and held.get("owner") == owner and held.get("expires_at") - stamp > ttl / 2:
                return True  # ours with more than half of it left: no write (a read-only transaction)
            tx.set(ref, {"name": name, "owner": owner, "expires_at": stamp + ttl})
            return True

        with self._stripes("lock", name):
            return run_transaction(self.client, body, f"lock {name}")

    def release_lock(self, name: str, owner: str) -> None:
        ref = self._locks.document(doc_id(name))

        def body(tx: Any) -> None:
            held = ref.get(transaction=tx)
            if held.exists and held.get("owner") == owner:
                tx.delete(ref)

        with self._stripes("lock", name):
            run_transaction(self.client, body, f"unlock {name}")

    def close(self) -> None:
        if self._close_client:
            close_client(self.client)


def _as_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


class FirestoreWatch(Watch):
    """A snapshot listener on the jobs collection, turned into ChangeEvents.

    The cursor is the document's ``update_time``. ``since=None`` skips the records
    present in the first snapshot (the feed starts "now": the constructor waits
    for that first snapshot, so any change made after ``watch()`` returns is
    delivered); ``since=<cursor>`` replays, from the first snapshot, the records
    changed after it. A job's events never go backwards in version, even if the
    listener reconnects and resends documents. The listener keeps every document
    of the collection in memory (the client's own bookkeeping), so archive or
    move old jobs if the collection grows very large.
    """

    def __init__(self, collection: Any, callback: Callable[[ChangeEvent], None], since: Any = None,
                 ready_timeout: float = WATCH_READY_TIMEOUT):
        self._callback = callback
        self._since = None if since is None else _as_time(since)
        self._delivered: dict[str, int] = {}
        self._first = True
        self._ready = threading.Event()
        self._stopped = False
        self._guard = threading.Lock()
        self._listener = collection.on_snapshot(self._on_snapshot)
        if not self._ready.wait(ready_timeout):
            log.warning("firestore watch: no first snapshot after %.0fs; continuing", ready_timeout)

    def _on_snapshot(self, docs: Any, changes: Any, read_time: Any) -> None:
        # Runs on the listener's thread; anything escaping here would end the feed.
        try:
            with self._guard:
                first, self._first = self._first, False
                events = []
                for change in changes:
                    if change.type == ChangeType.REMOVED:
                        continue
                    snapshot = change.document
                    try:
                        job = FirestoreJobStore._decode(snapshot)
                        kind = snapshot.get(KIND_FIELD) or "update"
                    except Exception:  # noqa: BLE001 - a bad record must not stop the feed
                        log.exception("firestore watch: unreadable document %s", snapshot.id)
                        continue
                    if first and (self._since is None or snapshot.update_time <= self._since):
                        self._delivered[job.task_id] = max(job.version, self._delivered.get(job.task_id, 0))
                        continue
                    events.append(ChangeEvent(snapshot.update_time, job, kind))
                events.sort(key=lambda e: e.cursor)
                for event in events:
                    if self._stopped:
                        return
                    if event.job.version <= self._delivered.get(event.task_id, 0):
                        continue  # a resend after a reconnect, or older than what we gave out
                    self._delivered[event.task_id] = event.job.version
                    try:
                        self._callback(event)
                    except Exception:  # noqa: BLE001 - a failing observer never stops the feed
                        log.exception("change-feed callback failed for %s", event.task_id)
        except Exception:  # noqa: BLE001
            log.exception("firestore watch: snapshot handling failed")
        finally:
            self._ready.set()

    def stop(self) -> None:
        self._stopped = True
        try:
            self._listener.unsubscribe()
        except Exception:  # noqa: BLE001 - stopping twice or after a dropped stream
            log.debug("firestore watch: unsubscribe failed", exc_info=True)

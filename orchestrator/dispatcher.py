"""Dispatcher: starts queued jobs in order, within the concurrency caps, and recovers lost ones.

One pass (``tick``) does, under a store lock so two service instances never
dispatch at once:
1. recover: a running job whose worker is gone (its lease expired, or its local
   process exited without closing the job) goes back to the queue and resumes from
   its checkpoint, up to MAX_RECOVERIES; a cancelling one whose worker ignored the
   request past CANCEL_GRACE_SECONDS is stopped hard and marked cancelled;
2. dispatch: queued jobs by priority, then age, while fewer than
   MAX_CONCURRENT_JOBS run in all and fewer than MAX_JOBS_PER_TENANT per tenant.
   Each job is claimed by compare-and-set (queued -> running) *before* launch, so
   a job never runs twice at once, however many queue deliveries arrive.

Queue messages only wake the dispatcher; the store is the truth, so a job over the
cap stays queued and is started when a slot frees, whatever the queue's retry
policy does.

Passes in one process run one at a time (the background loop, Pub/Sub pushes and
Cloud Scheduler ticks may ask at once), so the capacity count of a pass is never
stale against another pass of the same process. The background loop either pulls
the queue (``pull=True``: wake-ups come from ``pull``) or only ticks every
DISPATCH_INTERVAL (push mode: wake-ups arrive at ``/pubsub/push``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from orchestrator.backends import Backend
from orchestrator.domain.job import EndReason, Job, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import claim, finish, record_execution, requeue
from orchestrator.launchers.base import LaunchError

log = logging.getLogger(__name__)

LOCK_NAME = "dispatcher"


class Dispatcher:
    """Moves jobs from queued to running, and back when their worker is lost."""

    def __init__(self, backend: Backend, clock: Callable[[], datetime] = utcnow, owner: str | None = None,
                 pull: bool = True):
        self.backend = backend
        self.pull = pull
        self.settings = backend.settings
        self.store = backend.store
        self.clock = clock
        self.owner = owner or f"dispatcher-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_ttl = max(10.0, 5 * self.settings.DISPATCH_INTERVAL)
        self._pass = threading.Lock()  # one pass at a time in this process

    # -- one pass -------------------------------------------------------------

    def tick(self) -> list[Job]:
        """Recover lost jobs, then start what fits. Returns the jobs launched."""
        return self.try_tick() or []

    def try_tick(self, wait: float = -1) -> list[Job] | None:
        """One pass, or None when it could not run: another pass of this process held on
        longer than ``wait`` seconds (-1: wait as long as it takes), or another instance
        holds the dispatcher lock."""
        if not self._pass.acquire(timeout=wait):
            return None
        try:
            now = self.clock()
            if not self.store.try_lock(LOCK_NAME, self.owner, self._lock_ttl, now):
                return None
            self.recover(now)
            return self.dispatch(now)
        finally:
            self._pass.release()

    def _rates(self, job: Job):
        device = (job.current_attempt.device or "") if job.current_attempt else ""
        configured = job.spec.gpu_type or self.settings.GPU_TYPE
        if device.startswith("cpu"):
            return self.settings.rates("cpu"), self.settings.rates(configured)
        return self.settings.rates(configured), None

    def recover(self, now: datetime) -> None:
        for job in self.store.active():
            attempt = job.current_attempt
            if attempt is None or job.lease is None:
                continue
            execution = attempt.execution
            exit_code = self.backend.launcher.exited(execution) if execution else None
            expired = job.lease.expires_at < now
            if job.status is JobStatus.CANCELLING and job.cancel and \
                    job.cancel.at + timedelta(seconds=self.settings.CANCEL_GRACE_SECONDS) < now:
                self._force_cancel(job, now)
                continue
            if not expired and exit_code is None:
                continue
            if exit_code is not None:
                # The process ended without closing its attempt: give its last write a moment
                # to land (it may be committing right now) by re-reading inside the CAS.
                detail = f"worker exited with code {exit_code} without finishing the attempt"
            else:
                detail = f"no heartbeat since {job.lease.heartbeat_at or attempt.claimed_at:%H:%M:%S} UTC"
            if execution and exit_code is None:
                self._stop_quietly(execution)
            rates, estimate = self._rates(job)
            number = attempt.number
            changed = self.store.update(
                job.task_id,
                lambda j: requeue(j, number, EndReason.LEASE_EXPIRED, now, rates, self.settings.MAX_RECOVERIES,
                                  estimate, detail=detail),
                kind="recovered",
            )
            if changed is not None:
                log.warning("job %s attempt %d lost (%s); now %s", job.task_id, number, detail, changed.status.value)

    def _force_cancel(self, job: Job, now: datetime) -> None:
        attempt = job.current_attempt
        if attempt.execution:
            self._stop_quietly(attempt.execution)
        rates, estimate = self._rates(job)
        self.store.update(
            job.task_id,
            lambda j: finish(j, attempt.number, EndReason.CANCELLED, now, rates, estimate,
                             detail=f"stopped after {self.settings.CANCEL_GRACE_SECONDS:.0f} s cancel grace"),
            kind="status:cancelled",
        )

    def _stop_quietly(self, execution: str) -> None:
        try:
            self.backend.launcher.stop(execution)
        except Exception:  # noqa: BLE001 - best effort; the fencing token blocks a zombie's writes
            log.warning("could not stop execution %s", execution, exc_info=True)

    def dispatch(self, now: datetime) -> list[Job]:
        active = self.store.active()
        running = len(active)
        per_tenant = Counter(job.tenant_id for job in active)
        launched: list[Job] = []
        capacity = self.settings.MAX_CONCURRENT_JOBS - running
        if capacity <= 0:
            return launched
        for job in self.store.queued(limit=200):
            if len(launched) >= capacity:
                break
            if per_tenant[job.tenant_id] >= self.settings.MAX_JOBS_PER_TENANT:
                continue
            claimed = self.store.update(
                job.task_id, lambda j: claim(j, now, self.settings.STARTUP_GRACE_SECONDS), kind="status:running"
            )
            if claimed is None:
                continue  # someone else took it, or it was cancelled meanwhile
            per_tenant[job.tenant_id] += 1
            started = self._launch(claimed, now)
            if started is not None:
                launched.append(started)
        return launched

    def _launch(self, job: Job, now: datetime) -> Job | None:
        number = job.current_attempt.number
        try:
            execution = self.backend.launcher.launch(job, number)
        except (LaunchError, OSError, RuntimeError) as exc:
            log.error("launch of %s attempt %d failed: %s", job.task_id, number, exc)
            rates, estimate = self._rates(job)
            self.store.update(
                job.task_id,
                lambda j: requeue(j, number, EndReason.LAUNCH_FAILED, now, rates, self.settings.MAX_RECOVERIES,
                                  estimate, detail=str(exc)[:500]),
                kind="launch_failed",
            )
            return None
        recorded = self.store.update(job.task_id, lambda j: record_execution(j, number, execution, self.clock()),
                                     kind="launched")
        log.info("launched %s attempt %d as %s", job.task_id, number, execution)
        return recorded or job

    # -- background loop ------------------------------------------------------

    def run(self) -> None:
        """Tick until stopped: after each pull of wake-ups, or every DISPATCH_INTERVAL in push mode."""
        if not self.pull:
            self._run_timed()
            return
        queue = self.backend.queue
        while not self._stop.is_set():
            try:
                messages = queue.pull(max_messages=50, timeout=self.settings.DISPATCH_INTERVAL)
            except Exception:  # noqa: BLE001 - the store scan below still dispatches
                log.warning("queue pull failed", exc_info=True)
                messages = []
                self._stop.wait(self.settings.DISPATCH_INTERVAL)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - keep dispatching after a transient store error
                log.exception("dispatch pass failed")
                self._stop.wait(self.settings.DISPATCH_INTERVAL)
                continue
            # Ack after the pass: the job is claimed, or it stays queued in the store (the truth).
            for message in messages:
                try:
                    queue.ack(message.ack_id)
                except Exception:  # noqa: BLE001 - a redelivery is harmless
                    log.debug("ack failed for %s", message.ack_id, exc_info=True)
            self._reap()

    def _run_timed(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - keep dispatching after a transient store error
                log.exception("dispatch pass failed")
            self._reap()
            self._stop.wait(self.settings.DISPATCH_INTERVAL)

    def _reap(self) -> None:
        reap = getattr(self.backend.launcher, "reap", None)
        if reap:
            reap()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        try:
            self.store.release_lock(LOCK_NAME, self.owner)
        except Exception:  # noqa: BLE001 - the lock expires on its own
            log.debug("release of dispatcher lock failed", exc_info=True)

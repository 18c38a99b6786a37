"""Dispatcher: starts queued jobs in order, within the concurrency caps, and recovers lost ones.

One pass (``tick``) does, under a store lock so two service instances never
dispatch at once:
1. recover (orchestrator/recovery.py): a running job whose worker is gone goes back
   to the queue (one killed over its memory limit with half the batch, orchestrator/domain/oom.py);
   a cancelling one whose worker ignored
   the request past CANCEL_GRACE_SECONDS is stopped hard (a failed stop call is asked
   again with backoff, orchestrator/stopping.py) and marked cancelled once its
   execution is seen ended, or its lease expires;
2. dispatch: queued jobs in fair-share order (``domain.fair_share``: round-robin
   across tenants, each tenant's own jobs by priority, then age), while fewer than
   MAX_CONCURRENT_JOBS run in all and fewer than MAX_JOBS_PER_TENANT per tenant.
   The store is asked for each tenant's next jobs, leaving out tenants at their
   cap, so one tenant's backlog never hides another tenant's queued job.
   Each job is claimed by compare-and-set (queued -> running) *before* launch, so
   a job never runs twice at once, however many queue deliveries arrive.

Write budget (stores/write_budget.py): a pass leaves a job too young to claim for
a later pass (``deferred_for`` says when), and records its launches one gap after
their claims (one wait for the whole pass).

Budget stops (orchestrator/budget_stops.py): a pass also checks, at most every
BUDGET_CHECK_SECONDS, whether a budget covering running jobs is used up, and asks
those jobs to stop at their next checkpoint.

Queue messages only wake the dispatcher; the store is the truth, so a job over the
cap stays queued and is started when a slot frees, whatever the queue's retry
policy does.

Passes in one process run one at a time (the background loop, Pub/Sub pushes and
Cloud Scheduler ticks may ask at once), so the capacity count of a pass is never
stale against another pass of the same process. The background loop either pulls
the queue (``pull=True``: wake-ups come from ``pull``) or only ticks every
DISPATCH_INTERVAL (push mode: wake-ups arrive at ``/pubsub/push``). A pass that
raises is logged and tried again after a back-off; ``health`` counts failures in a
row for ``/healthz``. A launch that raises anything ends the claimed attempt as
``launch_failed``: the job is queued again, and fails after MAX_LAUNCH_ATTEMPTS in
a row.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from orchestrator.backends import Backend
from orchestrator.budget_stops import BudgetStops
from orchestrator.domain.fair_share import fair_order
from orchestrator.domain.job import EndReason, Job, utcnow
from orchestrator.domain.transitions import claim, record_execution, requeue
from orchestrator.health import LoopHealth, describe
from orchestrator.launchers.base import LaunchError
from orchestrator.recovery import Recovery, attempt_rates
from orchestrator.spending import Spending
from orchestrator.stores.write_budget import WriteBudget

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
        # try_lock renews only once half of this is left, so a pass starts with at least half of it.
        self._lock_ttl = max(20.0, 10 * self.settings.DISPATCH_INTERVAL)
        self._pass = threading.Lock()  # one pass at a time in this process
        self.budget = WriteBudget(self.settings.write_gap)
        self._due: float | None = None  # monotonic time a job deferred by the last pass may be claimed
        self.recovery = Recovery(backend)
        # Running jobs over a used-up budget stop at their next checkpoint (orchestrator/budget_stops.py).
        self.budget_stops = BudgetStops(Spending(backend), self.settings.BUDGET_CHECK_SECONDS)
        self.health = LoopHealth("dispatcher", self.settings.LOOP_FAILURE_LIMIT, self.settings.DISPATCH_INTERVAL)

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
            self._prepare_launcher()
            now = self.clock()
            if not self.store.try_lock(LOCK_NAME, self.owner, self._lock_ttl, now):
                return None
            self.recover(now)
            self.budget_stops.check(now)
            return self.dispatch(now)
        finally:
            self._pass.release()

    def _prepare_launcher(self) -> None:
        """Let the launcher get ready (a local one starts its warm-start process: seconds, once)
        when a queued job waits, before this pass takes the dispatcher lock or claims a job."""
        try:
            launcher = self.backend.launcher
            if launcher.wants_preparing() and self.store.queued_by_tenant(1):
                launcher.prepare()
        except Exception:  # noqa: BLE001 - the pass goes on; a launcher that cannot launch says so at launch
            log.warning("could not prepare the launcher", exc_info=True)

    def deferred_for(self) -> float | None:
        """Seconds until a job the last pass left for the write budget may be claimed (0 when it
        may be now; at most ``budget.longest_deferral``), or None when that pass deferred nothing."""
        due = self._due
        return None if due is None else max(0.0, due - time.monotonic())

    def recover(self, now: datetime) -> None:
        """Requeue, fail or stop the jobs whose worker is lost (orchestrator/recovery.py)."""
        self.recovery.recover(now)

    def _candidates(self, per_tenant: Counter[str], capacity: int) -> list[Job]:
        """The queued jobs that may take the free slots, in fair-share order: tenants at their cap
        are left out of the store's query, so no backlog of theirs hides another tenant's jobs."""
        cap = self.settings.MAX_JOBS_PER_TENANT
        full = {tenant for tenant, holding in per_tenant.items() if holding >= cap}
        heads = self.store.queued_by_tenant(min(cap, capacity), skip=full)
        return fair_order(heads, per_tenant, cap)

    def dispatch(self, now: datetime) -> list[Job]:
        self._due = None
        active = self.store.active()
        running = len(active)
        per_tenant = Counter(job.tenant_id for job in active)
        launched: list[Job] = []
        capacity = self.settings.MAX_CONCURRENT_JOBS - running
        if capacity <= 0:
            return launched
        started: list[tuple[float, Job, Callable[[], Job | None]]] = []  # (claimed at, job, its follow-up write)
        deferred = 0
        for job in self._candidates(per_tenant, capacity):
            if len(started) + deferred >= capacity:
                break
            if per_tenant[job.tenant_id] >= self.settings.MAX_JOBS_PER_TENANT:
                continue
            young = self.budget.claim_wait(job.updated_at, now)
            if young > 0:
                # Too young: claim it next pass. Its slot is kept meanwhile, so no job behind it in
                # the order starts in its place.
                due = time.monotonic() + young
                self._due = due if self._due is None else min(self._due, due)
                deferred += 1
                per_tenant[job.tenant_id] += 1
                continue
            claimed = self.store.update(
                job.task_id, lambda j: claim(j, now, self.settings.STARTUP_GRACE_SECONDS), kind="status:running"
            )
            if claimed is None:
                continue  # someone else took it, or it was cancelled meanwhile
            per_tenant[job.tenant_id] += 1
            started.append((time.monotonic(), claimed, self._launch(claimed)))
        for claimed_at, job, follow_up in started:
            # The launch record (or the requeue of a failed launch) is the job's next write after the claim.
            wait = self.budget.wait_after(claimed_at, time.monotonic())
            if wait > 0:
                time.sleep(wait)
            try:
                recorded = follow_up()
            except Exception:  # noqa: BLE001 - the other launches still get their record
                log.exception("could not record the launch of %s", job.task_id)
                continue
            if recorded is not None:
                launched.append(recorded)
        return launched

    def _launch(self, job: Job) -> Callable[[], Job | None]:
        """Launch the claimed attempt now; returns the write that records how it went
        (the execution, or a requeue when the launch failed), to be made when the budget allows."""
        number = job.current_attempt.number
        try:
            execution = self.backend.launcher.launch(job, number)
        except Exception as exc:  # noqa: BLE001 - any failure (even making the launcher) ends the attempt
            log.error("launch of %s attempt %d failed: %s", job.task_id, number, exc)
            rates, estimate = attempt_rates(self.settings, job)
            detail = str(exc)[:500] if isinstance(exc, (LaunchError, OSError)) else describe(exc)
            limit = self.settings.MAX_LAUNCH_ATTEMPTS

            def requeue_failed() -> None:
                # Back to the queue for another try, or failed (launch_failed) after `limit` in a row.
                now = self.clock()
                self.store.update(
                    job.task_id,
                    lambda j: requeue(j, number, EndReason.LAUNCH_FAILED, now, rates, self.settings.MAX_RECOVERIES,
                                      estimate, detail=detail, max_launch_attempts=limit),
                    kind="launch_failed",
                )

            return requeue_failed
        log.info("launched %s attempt %d as %s", job.task_id, number, execution)

        def record() -> Job:
            recorded = self.store.update(job.task_id, lambda j: record_execution(j, number, execution, self.clock()),
                                         kind="launched")
            return recorded or job

        return record

    # -- background loop ------------------------------------------------------

    def run(self) -> None:
        """Pass after pass until stopped: after each pull of wake-ups, or every DISPATCH_INTERVAL in
        push mode. A pass that raises is logged and tried again after a back-off (``self.health``
        counts the failures in a row; /healthz reports the loop once they reach LOOP_FAILURE_LIMIT)."""
        while not self._stop.is_set():
            try:
                wait = self._pull_pass() if self.pull else self._timed_pass()
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one failure
                wait = self.health.failed(exc)
                log.exception("dispatcher pass failed (%d in a row); next try in %.1f s", self.health.failures, wait)
            else:
                self.health.succeeded()
            if wait > 0:
                self._stop.wait(wait)

    def _pull_pass(self) -> float:
        """Pull wake-ups, run a pass, then ack them; returns the wait before the next pass (none)."""
        queue = self.backend.queue
        try:
            messages = queue.pull(max_messages=50, timeout=self._next_wait())
        except Exception:  # noqa: BLE001 - the store scan below still dispatches
            log.warning("queue pull failed", exc_info=True)
            messages = []
            self._stop.wait(self.settings.DISPATCH_INTERVAL)
        self.tick()
        # Ack after the pass: the job is claimed, or it stays queued in the store (the truth).
        for message in messages:
            try:
                queue.ack(message.ack_id)
            except Exception:  # noqa: BLE001 - a redelivery is harmless
                log.debug("ack failed for %s", message.ack_id, exc_info=True)
        self._reap()
        return 0.0

    def _timed_pass(self) -> float:
        self.tick()
        self._reap()
        return self._next_wait()

    def _next_wait(self) -> float:
        """Until the next pass: DISPATCH_INTERVAL, or less when a deferred job comes due sooner."""
        due = self.deferred_for()
        interval = self.settings.DISPATCH_INTERVAL
        return interval if due is None else min(interval, due + 0.01)

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
        self.budget_stops.spending.close()

"""Background writers: the lease heartbeat and coalesced progress reports.

Both run on their own threads so the training thread never waits on the store,
and a long validation pass is never mistaken for a dead worker. A store error
is logged and skipped (the lease outlives a few misses); a write the store
refuses (the transition returned None) means the attempt is no longer ours, so
the ``lost`` flag is raised and training stops without writing anything else.

A progress write extends the lease too (it proves the attempt alive), so while training reports
progress the heartbeat has nothing to add and skips its write: both share one ``Liveness``. On a long
run that removes a job-document write every LEASE_SECONDS/4; the heartbeat still beats through long
validation passes and start-up, when no progress is written.

The attempt gives both its gated store (worker/prepare.py, worker/gate.py): their writes, and the
runner's own, share one write gate, so they never land closer than the store's
write gap (1 s on the gcp backend) even when their own schedules coincide.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from orchestrator.domain.epochs import EpochRow, with_epochs
from orchestrator.domain.job import CostSummary, Job, Progress, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import heartbeat, mark_training, report_progress
from orchestrator.stores.base import JobStore
from worker.stop import StopFlags, StopReason
from worker.timing import TrainingClock

log = logging.getLogger(__name__)


class Liveness:
    """When the attempt last proved itself alive to the store (a heartbeat or a progress write that
    extended the lease), on the monotonic clock; shared by the heartbeat and the progress reporter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.renewed_at = time.monotonic()

    def renewed(self) -> None:
        with self._lock:
            self.renewed_at = time.monotonic()

    def since(self) -> float:
        """Seconds since the lease was last extended."""
        with self._lock:
            return time.monotonic() - self.renewed_at


def _notice_cancel(job: Job, flags: StopFlags) -> None:
    if job.status is JobStatus.CANCELLING and not flags.is_set(StopReason.CANCEL):
        log.info("cancel requested by %s; stopping after this batch", job.cancel.by if job.cancel else "?")
        flags.set(StopReason.CANCEL)
    if job.budget_stop is not None and not flags.is_set(StopReason.BUDGET):
        # A budget ran out (the service's budget pass): stop at the next checkpoint, not mid-epoch.
        log.info("budget stop requested (%s); stopping at the next checkpoint", job.budget_stop.detail)
        flags.set(StopReason.BUDGET, job.budget_stop.detail)


class Heartbeat:
    """Extends the lease every LEASE_SECONDS/4 and, in between, reads the job every
    ``cancel_poll`` seconds so a cancel is seen within about a second (a read costs far
    less than a write, and Firestore allows ~1 write/s per document)."""

    def __init__(self, store: JobStore, task_id: str, attempt: int, lease_seconds: float, flags: StopFlags,
                 cancel_poll: float = 1.0, liveness: Liveness | None = None):
        self.store, self.task_id, self.attempt = store, task_id, attempt
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 4
        self.cancel_poll = max(0.1, min(cancel_poll, self.interval))
        self.flags = flags
        self.liveness = liveness or Liveness()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.liveness.renewed()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.cancel_poll) and not self.flags.lost:
            if self.liveness.since() >= self.interval:  # no progress write extended the lease lately
                self.beat()
            else:
                self.poll_cancel()

    def poll_cancel(self) -> None:
        """Read-only check for a cancel request; errors are left to the next beat."""
        try:
            job = self.store.get(self.task_id)
        except Exception:  # noqa: BLE001 - the heartbeat reports store trouble
            return
        if job is not None:
            _notice_cancel(job, self.flags)

    def beat(self) -> None:
        """One heartbeat; errors are logged, never raised."""
        try:
            job = self.store.update(
                self.task_id, lambda j: heartbeat(j, self.attempt, utcnow(), self.lease_seconds), kind="heartbeat"
            )
        except Exception as exc:  # noqa: BLE001 - a missed beat is survivable; training goes on
            silent = self.liveness.since()
            log.warning("heartbeat failed (%s: %s); last success %.0f s ago", type(exc).__name__, exc, silent)
            if silent > self.lease_seconds:
                # Our lease has run out, so the dispatcher may already have started another
                # execution: stop before we overwrite its checkpoints.
                self.flags.set(StopReason.LOST, f"no successful heartbeat for {silent:.0f} s; the lease has expired")
            return
        if job is None:
            self.flags.set(StopReason.LOST, f"heartbeat refused: attempt {self.attempt} is no longer current")
            return
        self.liveness.renewed()
        _notice_cancel(job, self.flags)


class ProgressReporter:
    """Writes the newest progress at most every ``interval`` seconds; epoch ends go out as soon as
    one second (or ``interval``, if shorter) has passed since the previous write.

    ``offer`` is called from the training thread and only stores the update; a
    background thread writes. Updates that arrive between two writes are
    coalesced: the newest progress wins and metrics are merged, so Firestore's
    ~1 write/s per document is respected. Each write also stamps the training ``clock``'s
    marks on the attempt (worker/timing.py), so the cost split needs no writes of its own, and
    carries the finished epochs' rows (orchestrator/domain/epochs.py), so the curves need none either.
    """

    def __init__(self, store: JobStore, task_id: str, attempt: int, interval: float, flags: StopFlags,
                 cost: Callable[[Job], CostSummary] | None = None, clock: TrainingClock | None = None,
                 liveness: Liveness | None = None, lease_seconds: float | None = None):
        self.store, self.task_id, self.attempt = store, task_id, attempt
        # Given both, each progress write also extends the lease and tells the heartbeat so.
        self.liveness, self.lease_seconds = liveness, lease_seconds
        self.interval = interval
        self.min_gap = min(1.0, interval)  # even epoch ends wait this long after the previous write
        self.flags = flags
        self.cost = cost
        self.clock = clock or TrainingClock()
        self._cond = threading.Condition()
        self._progress: Progress | None = None
        self._metrics: dict[str, float] = {}
        self._rows: list[EpochRow] = []  # finished epochs not yet written
        self._urgent = False
        self._last_write = float("-inf")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, progress: Progress, metrics: dict[str, float] | None = None, urgent: bool = False,
              row: EpochRow | None = None) -> None:
        """Queue an update (no I/O). ``urgent`` for epoch ends: written without the interval wait;
        ``row``: the epoch's metric row, kept until a write carries it."""
        with self._cond:
            self._progress = progress
            if metrics:
                self._metrics.update(metrics)
            if row is not None:
                self._rows.append(row)
            self._urgent = self._urgent or urgent
            self._cond.notify()

    def stop(self, flush: bool = True, timeout: float = 15.0) -> None:
        """Stop the thread; with ``flush`` write what is pending first (unless the attempt is lost)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        if flush and not self.flags.lost:
            self._write_pending()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                if self._progress is None:
                    self._cond.wait()
                    continue
                wait = self._last_write + (self.min_gap if self._urgent else self.interval) - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            self._write_pending()
            if self.flags.lost:
                return

    def _write_pending(self) -> None:
        with self._cond:
            progress, metrics, rows = self._progress, self._metrics, self._rows
            if progress is None:
                return
            self._progress, self._metrics, self._rows, self._urgent = None, {}, [], False
            self._last_write = time.monotonic()

        def apply(job: Job) -> Job | None:
            # The marks first, so the cost written with them is already split by them.
            job = mark_training(job, self.attempt, self.clock.started_at, self.clock.checkpoint_at)
            reported = report_progress(job, self.attempt, progress, metrics or None, utcnow(),
                                       self.cost(job) if self.cost else None,
                                       self.lease_seconds if self.liveness else None)
            return with_epochs(reported, rows) if reported is not None else None

        try:
            job = self.store.update(self.task_id, apply, kind="progress")
        except Exception as exc:  # noqa: BLE001 - progress is best effort; training goes on
            log.warning("progress write failed (%s: %s); will retry with the next update", type(exc).__name__, exc)
            with self._cond:  # keep what failed unless something newer came meanwhile
                if self._progress is None:
                    self._progress = progress
                self._metrics = {**metrics, **self._metrics}
                self._rows = rows + self._rows
            return
        if job is None:
            self.flags.set(StopReason.LOST, f"progress refused: attempt {self.attempt} is no longer current")
            return
        if self.liveness is not None:
            self.liveness.renewed()
        _notice_cancel(job, self.flags)

"""Recovery: jobs that hold a worker slot but whose worker is lost, or ignores a cancel.

The first step of every dispatcher pass (orchestrator/dispatcher.py), under its lock:
- a running job whose worker is gone (its lease expired, or its local process exited
  without closing the job) goes back to the queue and resumes from its checkpoint, up
  to MAX_RECOVERIES (``recovered``);
- but one the kernel killed over WORKER_MEMORY_LIMIT ends ``out_of_memory``: it goes back to the
  queue with half the batch, OOM_RETRIES times at most, then fails (orchestrator/domain/oom.py);
- a cancelling one whose worker ignored the request past CANCEL_GRACE_SECONDS is stopped
  hard (orchestrator/stopping.py: a failed stop call is asked again with backoff) and
  stays cancelling until its execution is seen ended (then cancelled, the attempt's
  ``stopped_at`` saying when its GPU stopped billing) or its lease expires (then
  cancelled, the stop still asked for until accepted).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from orchestrator.backends import Backend
from orchestrator.config import Settings
from orchestrator.domain.cost import Rates
from orchestrator.domain.job import EndReason, Job
from orchestrator.domain.oom import after_out_of_memory
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import finish, requeue
from orchestrator.stopping import Stopper

log = logging.getLogger(__name__)


def attempt_rates(settings: Settings, job: Job) -> tuple[Rates, Rates | None]:
    """The rates an attempt of ``job`` is billed at, and, when it ran on the CPU instead of the
    configured GPU, what the same seconds would cost on that GPU (else None)."""
    device = (job.current_attempt.device or "") if job.current_attempt else ""
    configured = job.spec.gpu_type or settings.GPU_TYPE
    if device.startswith("cpu"):
        return settings.rates("cpu"), settings.rates(configured)
    return settings.rates(configured), None


class Recovery:
    """Ends or requeues the attempts whose worker is lost; see the module."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.settings = backend.settings
        self.store = backend.store
        self.stopper = Stopper(backend.settings, lambda: backend.launcher)

    def recover(self, now: datetime) -> None:
        """One look at every job that holds a slot: requeue, fail or stop the lost ones."""
        self.stopper.retry(now)
        for job in self.store.active():
            attempt = job.current_attempt
            if attempt is None or job.lease is None:
                continue
            execution = attempt.execution
            exit_code = self.backend.launcher.exited(execution) if execution else None
            expired = job.lease.expires_at < now
            if job.status is JobStatus.CANCELLING and job.cancel and not expired and \
                    job.cancel.at + timedelta(seconds=self.settings.CANCEL_GRACE_SECONDS) < now:
                self._force_cancel(job, now, exit_code)
                continue
            if not expired and exit_code is None:
                continue
            oom = self.backend.launcher.out_of_memory(execution) if exit_code is not None else None
            if oom:
                self._out_of_memory(job, oom, now)
                continue
            if exit_code is not None:
                # The process ended without closing its attempt: give its last write a moment
                # to land (it may be committing right now) by re-reading inside the CAS.
                detail = f"worker exited with code {exit_code} without finishing the attempt"
            else:
                detail = f"no heartbeat since {job.lease.heartbeat_at or attempt.claimed_at:%H:%M:%S} UTC"
            if execution and exit_code is None:
                # Not seen ended: ask it to stop (again later if the call fails, whatever the job does next).
                self.stopper.stop(execution, now)
                detail += self._unconfirmed(execution)
            elif execution:
                self.stopper.forget(execution)
            rates, estimate = attempt_rates(self.settings, job)
            number = attempt.number
            stopped_at = now if exit_code is not None else None
            changed = self.store.update(
                job.task_id,
                lambda j: requeue(j, number, EndReason.LEASE_EXPIRED, now, rates, self.settings.MAX_RECOVERIES,
                                  estimate, detail=detail, stopped_at=stopped_at),
                kind="recovered",
            )
            if changed is not None:
                log.warning("job %s attempt %d lost (%s); now %s", job.task_id, number, detail, changed.status.value)

    def _out_of_memory(self, job: Job, detail: str, now: datetime) -> None:
        """The kernel killed the worker over WORKER_MEMORY_LIMIT: half the batch while retries are left,
        else the job fails (orchestrator/domain/oom.py)."""
        rates, estimate = attempt_rates(self.settings, job)
        number = job.current_attempt.number
        self.stopper.forget(job.current_attempt.execution)
        changed = self.store.update(
            job.task_id,
            lambda j: after_out_of_memory(j, number, now, rates, self.settings.OOM_RETRIES, self.settings.MAX_RECOVERIES,
                                          estimate, detail=detail, stopped_at=now),
            kind="out_of_memory",
        )
        if changed is not None:
            log.warning("job %s attempt %d: %s; now %s (%s)", job.task_id, number, detail, changed.status.value,
                        changed.progress.message)

    def _force_cancel(self, job: Job, now: datetime, exit_code: int | None) -> None:
        """Past the cancel grace, within the lease: stop the execution, and end the job once it is seen
        ended. Until then the job stays cancelling (a failed stop call is asked again on a later pass)."""
        attempt = job.current_attempt
        execution = attempt.execution
        if execution and exit_code is None and self.stopper.stop(execution, now):
            exit_code = self.backend.launcher.exited(execution)  # a launcher that stops at once says so now
        if execution and exit_code is None:
            return  # still running, as far as anyone knows: it may be billing, so the job is not over
        if execution:
            self.stopper.forget(execution)
        rates, estimate = attempt_rates(self.settings, job)
        changed = self.store.update(
            job.task_id,
            lambda j: finish(j, attempt.number, EndReason.CANCELLED, now, rates, estimate,
                             detail=f"stopped after {self.settings.CANCEL_GRACE_SECONDS:.0f} s cancel grace",
                             stopped_at=now if execution else None),
            kind="status:cancelled",
        )
        if changed is not None:
            log.info("job %s cancelled; execution %s seen stopped at %s", job.task_id, execution, now)

    def _unconfirmed(self, execution: str) -> str:
        """Words for an attempt closed while its execution's stop calls fail (none when they don't)."""
        failing = self.stopper.failing(execution)
        if failing is None:
            return ""
        return (f"; its execution could not be stopped yet ({failing.failures} failed stop calls, "
                f"last: {failing.error}); still trying")

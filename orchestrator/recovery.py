"""Recovery: jobs that hold a worker slot but whose worker is lost, or ignores a cancel.

The first step of every dispatcher pass (orchestrator/dispatcher.py), under its lock:
- a running job whose worker is gone (its lease expired, or its local process exited
  without closing the job) goes back to the queue and resumes from its checkpoint, up
  to MAX_RECOVERIES (``recovered``);
- but one the kernel killed over WORKER_MEMORY_LIMIT fails, ``out_of_memory``: it would
  run out again;
- a cancelling one whose worker ignored the request past CANCEL_GRACE_SECONDS is stopped
  hard and marked cancelled.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from orchestrator.backends import Backend
from orchestrator.config import Settings
from orchestrator.domain.cost import Rates
from orchestrator.domain.job import EndReason, Job, JobError
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import finish, requeue

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

    def recover(self, now: datetime) -> None:
        """One look at every job that holds a slot: requeue, fail or stop the lost ones."""
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
            oom = self.backend.launcher.out_of_memory(execution) if exit_code is not None else None
            if oom:
                self._fail_out_of_memory(job, oom, now)
                continue
            if exit_code is not None:
                # The process ended without closing its attempt: give its last write a moment
                # to land (it may be committing right now) by re-reading inside the CAS.
                detail = f"worker exited with code {exit_code} without finishing the attempt"
            else:
                detail = f"no heartbeat since {job.lease.heartbeat_at or attempt.claimed_at:%H:%M:%S} UTC"
            if execution and exit_code is None:
                self._stop_quietly(execution)
            rates, estimate = attempt_rates(self.settings, job)
            number = attempt.number
            changed = self.store.update(
                job.task_id,
                lambda j: requeue(j, number, EndReason.LEASE_EXPIRED, now, rates, self.settings.MAX_RECOVERIES,
                                  estimate, detail=detail),
                kind="recovered",
            )
            if changed is not None:
                log.warning("job %s attempt %d lost (%s); now %s", job.task_id, number, detail, changed.status.value)

    def _fail_out_of_memory(self, job: Job, detail: str, now: datetime) -> None:
        """The kernel killed the worker over WORKER_MEMORY_LIMIT: the job fails (a rerun would too)."""
        rates, estimate = attempt_rates(self.settings, job)
        number = job.current_attempt.number
        error = JobError(reason=EndReason.OUT_OF_MEMORY.value, message=detail)
        changed = self.store.update(
            job.task_id,
            lambda j: finish(j, number, EndReason.OUT_OF_MEMORY, now, rates, estimate, error=error, detail=detail,
                             progress=j.progress.model_copy(update={"message": "Failed: out of memory"})),
            kind="status:failed",
        )
        if changed is not None:
            log.warning("job %s attempt %d: %s", job.task_id, number, detail)

    def _force_cancel(self, job: Job, now: datetime) -> None:
        attempt = job.current_attempt
        if attempt.execution:
            self._stop_quietly(attempt.execution)
        rates, estimate = attempt_rates(self.settings, job)
        self.store.update(
            job.task_id,
            lambda j: finish(j, attempt.number, EndReason.CANCELLED, now, rates, estimate,
                             detail=f"stopped after {self.settings.CANCEL_GRACE_SECONDS:.0f} s cancel grace"),
            kind="status:cancelled",
        )

    def _stop_quietly(self, execution: str) -> None:
        """Stop an execution, best effort."""
        try:
            self.backend.launcher.stop(execution)
        except Exception:  # noqa: BLE001 - best effort; the fencing token blocks a zombie's writes
            log.warning("could not stop execution %s", execution, exc_info=True)

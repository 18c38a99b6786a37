"""Transitions: pure functions from one Job version to the next.

Each returns the new Job, or None when its precondition does not hold (wrong
status, a stale attempt, nothing to change). Stores run them inside a
compare-and-set (``JobStore.update``), so a None means "changed nothing" and no
event fires. Attempt numbers act as fencing tokens: a worker whose lease was
taken away can no longer write to the job.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orchestrator.domain.cost import Rates
from orchestrator.domain.cost_split import with_split
from orchestrator.domain.job import (
    Approval,
    Attempt,
    BudgetCrossing,
    CancelRequest,
    CostSummary,
    EndReason,
    Job,
    JobError,
    Lease,
    Progress,
)
from orchestrator.domain.status import JobStatus, can_transition

OUTCOME_STATUS = {
    EndReason.COMPLETED: JobStatus.COMPLETED,
    EndReason.FAILED: JobStatus.FAILED,
    EndReason.TIMEOUT: JobStatus.FAILED,
    EndReason.CANCELLED: JobStatus.CANCELLED,
    # Once its retries with a smaller batch are spent (orchestrator/domain/oom.py): the same batch would run out again.
    EndReason.OUT_OF_MEMORY: JobStatus.FAILED,
    # Not a recovery either: the next execution would land on the same machine image without a GPU.
    EndReason.GPU_UNAVAILABLE: JobStatus.FAILED,
    # Nor a diverged loss: the same spec would diverge again; the user lowers lr or batch and retries.
    EndReason.DIVERGED: JobStatus.FAILED,
}


def _move(job: Job, target: JobStatus, now: datetime, **changes: Any) -> Job | None:
    if not can_transition(job.status, target):
        return None
    return job.model_copy(update={"status": target, "updated_at": now, **changes})


def _owns(job: Job, attempt: int) -> bool:
    """The caller holds the job's current execution, and it is still live."""
    current = job.current_attempt
    return job.status.is_active() and current is not None and current.number == attempt and current.ended_at is None


def _replace_attempt(job: Job, attempt: Attempt) -> list[Attempt]:
    return [*job.attempts[:-1], attempt]


def cost_of(job: Job, rates: Rates, estimate: Rates | None = None, attempts: list[Attempt] | None = None) -> CostSummary:
    """Cost of every attempt's billed seconds (a running attempt counts up to now), split into
    training, overhead and lost (orchestrator/domain/cost_split.py)."""
    attempts = attempts if attempts is not None else job.attempts
    seconds = sum(a.billed_seconds for a in attempts)
    summary = with_split(CostSummary(
        billed_seconds=round(seconds, 3),
        gpu_type=rates.gpu_type,
        usd=rates.cost(seconds),
        usd_per_second=rates.per_second,
    ), attempts, rates)
    if estimate is not None and estimate.gpu_type != rates.gpu_type:
        summary = summary.model_copy(
            update={"estimate_gpu_type": estimate.gpu_type, "estimate_usd": estimate.cost(seconds)}
        )
    return summary


def claim(job: Job, now: datetime, startup_grace: float) -> Job | None:
    """queued -> running: open a new attempt; the dispatcher launches it next."""
    if job.status is not JobStatus.QUEUED:
        return None
    number = len(job.attempts) + 1
    attempt = Attempt(number=number, claimed_at=now, start_epoch=job.progress.epoch, batch_size=job.batch_size)
    return _move(
        job,
        JobStatus.RUNNING,
        now,
        attempts=[*job.attempts, attempt],
        lease=Lease(attempt=number, expires_at=now + timedelta(seconds=startup_grace)),
        progress=job.progress.model_copy(update={"message": "Starting worker", "updated_at": now}),
    )


def record_execution(job: Job, attempt: int, execution: str, now: datetime) -> Job | None:
    """Note the launcher's handle on the current attempt (e.g. a Cloud Run execution name)."""
    if not _owns(job, attempt):
        return None
    current = job.current_attempt.model_copy(update={"execution": execution})
    return job.model_copy(update={"attempts": _replace_attempt(job, current), "updated_at": now})


def worker_started(job: Job, attempt: int, now: datetime, lease_seconds: float, device: str,
                   start_epoch: int, began: datetime | None = None) -> Job | None:
    """The worker process is up and owns the attempt. ``began``: when its process started (billed time is
    the execution's whole life, imports and set-up included); never before the claim, whatever the clocks."""
    if not _owns(job, attempt) or job.current_attempt.started_at is not None:
        return None
    began = now if began is None else min(now, max(began, job.current_attempt.claimed_at))
    current = job.current_attempt.model_copy(
        update={"started_at": began, "device": device, "start_epoch": start_epoch}
    )
    resumed = start_epoch > 0
    message = f"Resumed from checkpoint at epoch {start_epoch}" if resumed else "Training started"
    return job.model_copy(
        update={
            "attempts": _replace_attempt(job, current),
            "started_at": job.started_at or began,
            "lease": Lease(attempt=attempt, expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now),
            "progress": job.progress.model_copy(update={"message": message, "updated_at": now}),
            "updated_at": now,
        }
    )


def heartbeat(job: Job, attempt: int, now: datetime, lease_seconds: float) -> Job | None:
    """Extend the lease of a live attempt."""
    if not _owns(job, attempt):
        return None
    return job.model_copy(
        update={"lease": Lease(attempt=attempt, expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now)}
    )


def report_progress(job: Job, attempt: int, progress: Progress, metrics: dict[str, float] | None,
                    now: datetime, cost: CostSummary | None = None,
                    lease_seconds: float | None = None) -> Job | None:
    """Store live progress from the attempt that owns the job. With ``lease_seconds`` the write also
    extends the lease, as a heartbeat would: news from training is a sign of life, so the heartbeat
    can skip its own write (worker/reporter.py Liveness)."""
    if not _owns(job, attempt):
        return None
    update: dict[str, Any] = {"progress": progress.model_copy(update={"updated_at": now}), "updated_at": now}
    if lease_seconds is not None:
        update["lease"] = Lease(attempt=attempt, expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now)
    if metrics is not None:
        update["metrics"] = {**job.metrics, **metrics}
    if cost is not None:
        update["cost"] = cost
    return job.model_copy(update=update)


def mark_training(job: Job, attempt: int, started_at: datetime | None, checkpoint_at: datetime | None) -> Job:
    """Stamp when the attempt's training loop began and its newest checkpoint was saved (carried by a
    progress write, for the cost split of a worker that is later lost); ``job`` unchanged otherwise."""
    current = job.current_attempt
    if started_at is None or not _owns(job, attempt):
        return job
    marks = {"training_started_at": current.training_started_at or started_at, "checkpoint_at": checkpoint_at}
    if all(getattr(current, key) == value for key, value in marks.items()):
        return job
    return job.model_copy(update={"attempts": _replace_attempt(job, current.model_copy(update=marks))})


def request_cancel(job: Job, by: str, now: datetime) -> Job | None:
    """A queued (or held) job is cancelled at once; a running one is asked to stop."""
    request = CancelRequest(by=by, at=now)
    if job.status in (JobStatus.QUEUED, JobStatus.AWAITING_APPROVAL):
        return _move(
            job,
            JobStatus.CANCELLED,
            now,
            cancel=request,
            finished_at=now,
            progress=job.progress.model_copy(update={"message": "Cancelled before it started", "updated_at": now}),
        )
    if job.status is JobStatus.RUNNING:
        return _move(
            job,
            JobStatus.CANCELLING,
            now,
            cancel=request,
            progress=job.progress.model_copy(update={"message": "Cancelling", "updated_at": now}),
        )
    return None


def hold_for_approval(job: Job, budgets: list[BudgetCrossing], now: datetime) -> Job | None:
    """A new job (not yet stored) over a budget: stored as awaiting_approval, saying which budgets."""
    if job.status is not JobStatus.QUEUED or job.attempts or job.version or job.approval or not budgets:
        return None  # only a new job, never one an admin approved already
    return job.model_copy(update={
        "status": JobStatus.AWAITING_APPROVAL,
        "approval": Approval(budgets=budgets, requested_at=now),
        "progress": job.progress.model_copy(update={"message": "Awaiting approval: over budget",
                                                    "updated_at": now}),
    })


def approve(job: Job, by: str, now: datetime) -> Job | None:
    """awaiting_approval -> queued: an admin lets it run (it then waits for a slot like any job)."""
    if job.status is not JobStatus.AWAITING_APPROVAL or job.approval is None:
        return None
    approval = job.approval.model_copy(update={"decision": "approved", "decided_by": by, "decided_at": now})
    return _move(job, JobStatus.QUEUED, now, approval=approval,
                 progress=job.progress.model_copy(update={"message": f"Approved by {by}; queued",
                                                          "updated_at": now}))


def reject(job: Job, by: str, now: datetime, reason: str | None = None) -> Job | None:
    """awaiting_approval -> cancelled: an admin refuses it; the reason is kept on the approval and the
    cancel request (by the admin), so every front end can say who and why."""
    if job.status is not JobStatus.AWAITING_APPROVAL or job.approval is None:
        return None
    words = (reason or "").strip() or "over budget"
    approval = job.approval.model_copy(update={"decision": "rejected", "decided_by": by, "decided_at": now,
                                               "reason": words})
    return _move(job, JobStatus.CANCELLED, now, approval=approval, cancel=CancelRequest(by=by, at=now),
                 finished_at=now, progress=job.progress.model_copy(
                     update={"message": f"Rejected by {by}: {words}", "updated_at": now}))


def _close_attempt(job: Job, reason: EndReason, now: datetime, detail: str | None,
                   end_epoch: int | None, lost_seconds: float | None, stopped_at: datetime | None = None,
                   training_seconds: float | None = None) -> Attempt:
    current = job.current_attempt
    return current.model_copy(
        update={
            "ended_at": now,
            "end_reason": reason,
            "detail": detail,
            "end_epoch": end_epoch if end_epoch is not None else job.progress.epoch,
            "lost_seconds": lost_seconds,
            "stopped_at": stopped_at,
            # Only the worker knows it; the dispatcher closing a lost attempt leaves what was stamped.
            "training_seconds": training_seconds if training_seconds is not None else current.training_seconds,
        }
    )


def finish(job: Job, attempt: int, reason: EndReason, now: datetime, rates: Rates,
           estimate: Rates | None = None, *, error: JobError | None = None,
           metrics: dict[str, float] | None = None, artifacts: dict[str, Any] | None = None,
           progress: Progress | None = None, detail: str | None = None,
           stopped_at: datetime | None = None, training_seconds: float | None = None) -> Job | None:
    """End the job for good: completed, failed (error or timeout) or cancelled. ``stopped_at``: when the
    dispatcher saw the execution it stopped hard end (the attempt records it); ``training_seconds``: the
    worker's time in the training loop (the cost split)."""
    target = OUTCOME_STATUS[reason]
    if not _owns(job, attempt):
        return None
    if target is JobStatus.CANCELLED and job.status is JobStatus.RUNNING:
        return None  # cancel must go through CANCELLING, so we know who asked
    closed = _close_attempt(job, reason, now, detail, progress.epoch if progress else None, None, stopped_at,
                            training_seconds)
    attempts = _replace_attempt(job, closed)
    update: dict[str, Any] = {
        "attempts": attempts,
        "finished_at": now,
        "lease": None,
        "error": error,
        "cost": cost_of(job, rates, estimate, attempts),
    }
    if metrics is not None:
        update["metrics"] = {**job.metrics, **metrics}
    if artifacts:
        update["artifacts"] = job.artifacts.model_copy(update=artifacts)
    update["progress"] = (progress or job.progress).model_copy(update={"updated_at": now})
    return _move(job, target, now, **update)


def launch_failures(attempts: list[Attempt]) -> int:
    """How many of the last attempts, in a row, ended because their execution could not be started."""
    count = 0
    for attempt in reversed(attempts):
        if attempt.end_reason is not EndReason.LAUNCH_FAILED:
            break
        count += 1
    return count


def requeue(job: Job, attempt: int, reason: EndReason, now: datetime, rates: Rates,
            max_recoveries: int, estimate: Rates | None = None, *, detail: str | None = None,
            lost_seconds: float | None = None, end_epoch: int | None = None,
            artifacts: dict[str, Any] | None = None, max_launch_attempts: int | None = None,
            stopped_at: datetime | None = None, training_seconds: float | None = None) -> Job | None:
    """End the current attempt so the job runs again from its checkpoint (``stopped_at``: when the
    dispatcher saw its execution end, if it did).

    A cancelling job whose worker is gone becomes cancelled instead, a job that lost
    more executions than MAX_RECOVERIES fails with a reason that says so, and so does
    one whose last ``max_launch_attempts`` launches all failed (``launch_failed``).
    """
    if not reason.resumes or not _owns(job, attempt):
        return None
    closed = _close_attempt(job, reason, now, detail, end_epoch, lost_seconds, stopped_at, training_seconds)
    attempts = _replace_attempt(job, closed)
    cost = cost_of(job, rates, estimate, attempts)
    base: dict[str, Any] = {"attempts": attempts, "lease": None, "cost": cost}
    if artifacts:
        base["artifacts"] = job.artifacts.model_copy(update=artifacts)
    if job.status is JobStatus.CANCELLING:
        return _move(job, JobStatus.CANCELLED, now, finished_at=now, **base,
                     progress=job.progress.model_copy(update={"message": "Cancelled", "updated_at": now}))
    tries = launch_failures(attempts) if reason is EndReason.LAUNCH_FAILED else 0
    if max_launch_attempts is not None and tries >= max_launch_attempts:
        message = (f"no worker could be started: {tries} launches failed in a row "
                   f"(MAX_LAUNCH_ATTEMPTS={max_launch_attempts})" + (f"; last: {detail}" if detail else ""))
        return _move(job, JobStatus.FAILED, now, finished_at=now, error=JobError(reason="launch_failed",
                     message=message), **base, progress=job.progress.model_copy(
                         update={"message": "Failed: no worker could be started", "updated_at": now}))
    recoveries = job.recoveries + (1 if reason.counts_as_recovery else 0)
    if recoveries > max_recoveries:
        message = (f"gave up after {recoveries} lost executions (MAX_RECOVERIES={max_recoveries}); "
                   f"last: {reason.value}" + (f" ({detail})" if detail else ""))
        return _move(job, JobStatus.FAILED, now, finished_at=now, recoveries=recoveries,
                     error=JobError(reason="too_many_recoveries", message=message), **base,
                     progress=job.progress.model_copy(update={"message": "Failed: too many interruptions",
                                                              "updated_at": now}))
    words = {
        EndReason.INTERRUPTED: "Interrupted",
        EndReason.CONTINUATION: "Continuing in a new execution",
        EndReason.LEASE_EXPIRED: "Worker lost",
        EndReason.LAUNCH_FAILED: "Launch failed",
        EndReason.OUT_OF_MEMORY: "Out of memory",  # oom.py words it better
        EndReason.STALLED: "Stalled (no batch finished)",
    }[reason]
    epoch = end_epoch if end_epoch is not None else job.progress.epoch
    message = f"{words} at epoch {epoch}/{job.progress.total_epochs}; waiting to resume from checkpoint"
    return _move(job, JobStatus.QUEUED, now, recoveries=recoveries, **base,
                 progress=job.progress.model_copy(update={"message": message, "updated_at": now}))


def fail_queued(job: Job, error: JobError, now: datetime) -> Job | None:
    """A queued job that can never run (e.g. its dataset vanished)."""
    if job.status is not JobStatus.QUEUED:
        return None
    return _move(job, JobStatus.FAILED, now, error=error, finished_at=now,
                 progress=job.progress.model_copy(update={"message": f"Failed: {error.message}", "updated_at": now}))


def set_notify(job: Job, patch: dict[str, Any]) -> Job | None:
    """Merge a patch into ``job.notify``; None if unchanged. No front end writes it any more (the Slack
    ledger has its own record, bot/threads); kept so old records and store tests can still use it."""
    merged = {**job.notify, **patch}
    if merged == job.notify:
        return None
    return job.model_copy(update={"notify": merged})


def record_dataset_images(job: Job, attempt: int, images: int) -> Job | None:
    """The live attempt counted its dataset's training images (what estimates learn from); None when it is
    not the live attempt or the count is already recorded (a resumed attempt's: no second write)."""
    if not _owns(job, attempt) or images <= 0 or job.dataset_images == images:
        return None
    return job.model_copy(update={"dataset_images": images})

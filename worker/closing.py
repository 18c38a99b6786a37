"""The closing paths: the one transition that ends an attempt, and what it stores.

``close`` turns an Outcome (worker/outcome.py) into exactly one closing write: completed
(final checkpoints, registry, W&B), failed, cancelled, timeout (``finish``), or interrupted
and continuation (``requeue``, the job resumes from its last checkpoint); ``stalled`` requeues
from the stall watchdog's thread (worker/watchdog.py) while training hangs; out of memory requeues
with half the batch or fails (orchestrator/domain/oom.py). ``fail_unstarted``
fails an attempt whose set-up failed before its start write. The background threads stop
before the closing write, so no heartbeat or progress lands after it; a lost attempt writes
nothing. Every closing returns ``Ended``: the exit code (worker/fenced.py) and the job as the
closing write left it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from orchestrator.domain.cost_cap import budget_stop
from orchestrator.domain.job import EndReason, Job, JobError, Progress, utcnow
from orchestrator.domain.oom import after_out_of_memory
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import finish, heartbeat, requeue
from orchestrator.stores.base import StoreError
from worker import fenced
from worker.checkpoints import LAST
from worker.error_text import scrubbed
from worker.fenced import EXIT_NOT_OURS, EXIT_OK, EXIT_STORE_ERROR, NotOurs
from worker.outcome import Failure, Outcome, Trained, error_from
from worker.prepare import Attempt, Background, Context, Pricing
from worker.results import store_results
from worker.stop import StopReason

log = logging.getLogger(__name__)

UPLOAD_WAIT = {StopReason.SIGTERM: 4.0}  # seconds to wait for the last checkpoint upload; default below
DEFAULT_UPLOAD_WAIT = 120.0
FAILED_UPLOAD_WAIT = 30.0


@dataclass(frozen=True)
class Ended:
    """How the attempt ended: the exit code, and the job as the closing write left it (None: nothing written)."""

    code: int
    job: Job | None = None

    @property
    def failed(self) -> bool:
        """Whether the closing write failed the job (W&B marks the run failed too)."""
        return self.job is not None and self.job.status is JobStatus.FAILED


class Kept(NamedTuple):
    """The checkpoint a resumed or failed job keeps."""

    artifacts: dict[str, Any]
    epochs: int  # finished epochs the stored last.pt holds
    lost_seconds: float  # training since it was saved, redone on resume


def close(attempt: Attempt, outcome: Outcome) -> Ended:
    """Write the transition that ends the attempt for ``outcome`` (nothing when the attempt was lost)."""
    flags = attempt.ctx.flags
    if flags.lost or outcome.stopped is StopReason.LOST:
        return _lost(attempt)
    if outcome.completed is not None:
        try:
            return _completed(attempt, outcome.completed)
        except Exception as exc:  # noqa: BLE001 - e.g. final checkpoint upload failed for good
            log.exception("could not store the results")
            return fail(attempt, error_from(exc, "artifact_error", attempt.ctx.home, attempt.ctx.log_file))
    if outcome.error is not None:
        if outcome.end is EndReason.OUT_OF_MEMORY:
            return _out_of_memory(attempt, outcome.error)
        return fail(attempt, outcome.error, outcome.end)
    reason = outcome.stopped
    attempt.background.stop(flags, flush=True, upload_wait=UPLOAD_WAIT.get(reason, DEFAULT_UPLOAD_WAIT))
    if flags.lost:
        return Ended(EXIT_NOT_OURS)
    if reason is StopReason.CANCEL:
        return _cancelled(attempt)
    if reason is StopReason.BUDGET:
        return _budget_stopped(attempt)
    if reason is StopReason.TIMEOUT:
        return _timeout(attempt)
    if reason is StopReason.SIGTERM:
        return _requeue(attempt, EndReason.INTERRUPTED, "SIGTERM received (preemption or stop)")
    return _continuation(attempt)


def fail(attempt: Attempt, error: JobError, reason: EndReason = EndReason.FAILED) -> Ended:
    """Fail the job with ``error``, keeping the last stored checkpoint."""
    ctx = attempt.ctx
    error = scrubbed(error, ctx.home)  # whoever built it: no server path reaches /status or Slack
    attempt.background.stop(ctx.flags, flush=True, upload_wait=FAILED_UPLOAD_WAIT)
    if ctx.flags.lost:
        return Ended(EXIT_NOT_OURS)
    kept = _kept(attempt)
    return _failed_write(ctx, attempt.job, attempt.background, attempt.setup.pricing, error, reason, kept,
                         _trained(attempt))


def fail_unstarted(ctx: Context, job: Job, failure: Failure, pricing: Pricing | None) -> Ended:
    """Fail the job whose set-up failed before the start write (no threads, no checkpoint of this attempt);
    billed as CPU when the device was never picked."""
    error = scrubbed(failure.error, ctx.home)
    if ctx.flags.lost:
        return Ended(EXIT_NOT_OURS)
    pricing = pricing or Pricing(ctx.settings.rates("cpu"))
    return _failed_write(ctx, job, None, pricing, error, failure.end, Kept({}, 0, 0.0))


def still_ours(ctx: Context) -> bool:
    """Confirm that no other execution took the job over, before the unfenced final uploads.

    Usually a read: while the stored lease is this attempt's with more than LEASE_SECONDS/2
    left, the fencing is as sound as after a confirming heartbeat write. Another execution
    can only get the job once the dispatcher requeues this attempt, which it does only when
    the lease has expired or this execution has exited (a cancel ignored past
    CANCEL_GRACE_SECONDS closes the job for good instead: no execution follows). So nobody
    else runs the job for more than LEASE_SECONDS/2 after the read (the lease's expiry was
    set by this worker's own clock, as a heartbeat's would be), and the heartbeat thread,
    which keeps running through the uploads, renews it within LEASE_SECONDS/4 of its last
    beat, raising ``lost`` (checked after the uploads) if refused: the same protection an
    upload gets after a write, with half the margin instead of all of it. With half or less
    left (beats late or failing) or an unreadable job, the fenced write (a heartbeat)
    decides, as it always did. The read saves the job document one write at the end of every job, right
    after the last epoch's progress (Firestore: ~1 write/s per document)."""
    try:
        job = ctx.store.get(ctx.task_id)
    except StoreError:
        job = None
    if _lease_held(ctx, job):
        return not ctx.flags.lost
    lease = ctx.settings.LEASE_SECONDS
    try:
        fenced.write(ctx.store, ctx.task_id, lambda j: heartbeat(j, ctx.number, utcnow(), lease), "heartbeat")
    except NotOurs:
        ctx.flags.set(StopReason.LOST, f"attempt {ctx.number} was taken over before its results were stored")
    except StoreError:
        log.warning("could not confirm the lease; the closing write will tell")
    return not ctx.flags.lost


def _lease_held(ctx: Context, job: Job | None) -> bool:
    """Whether ``job`` shows this attempt live with more than half its lease left."""
    if job is None or not job.status.is_active():
        return False
    current, lease = job.current_attempt, job.lease
    return (current is not None and current.number == ctx.number and current.ended_at is None
            and lease is not None and lease.attempt == ctx.number
            and (lease.expires_at - utcnow()).total_seconds() > ctx.settings.LEASE_SECONDS / 2)


# -- the paths ---------------------------------------------------------------------------------


def _lost(attempt: Attempt) -> Ended:
    ctx = attempt.ctx
    attempt.background.stop(ctx.flags, flush=False)
    log.error("attempt %d of %s lost (%s); exiting without writing", ctx.number, ctx.task_id,
              ctx.flags.lost_why or "refused")
    return Ended(EXIT_NOT_OURS)


def _completed(attempt: Attempt, trained: Trained) -> Ended:
    ctx, pricing = attempt.ctx, attempt.setup.pricing
    # Epoch uploads must not land after the final ones; the lease stays alive through the final uploads.
    attempt.background.stop(ctx.flags, flush=False, upload_wait=DEFAULT_UPLOAD_WAIT, keep_heartbeat=True)
    # Uploads and the registry are not fenced by the store: confirm the attempt is still ours first.
    if not still_ours(ctx):
        return _lost(attempt)
    results = store_results(attempt, trained)
    if results is None:  # lost during the final uploads
        return _lost(attempt)
    return _closing_write(
        ctx, attempt.background,
        lambda j: finish(j, ctx.number, EndReason.COMPLETED, utcnow(), pricing.rates, pricing.estimate,
                         metrics=trained.metrics, artifacts=results.artifacts, progress=results.progress,
                         detail=results.detail, training_seconds=_trained(attempt)),
        "status:completed",
    )


def _failed_write(ctx: Context, job: Job, background: Background | None, pricing: Pricing, error: JobError,
                  reason: EndReason, kept: Kept, trained: float | None = None) -> Ended:
    progress = _progress(job, f"Failed: {error.message}"[:200], kept.epochs)
    detail = None if reason is EndReason.FAILED else error.message  # e.g. diverged: where, and what to change
    return _closing_write(
        ctx, background,
        lambda j: finish(j, ctx.number, reason, utcnow(), pricing.rates, pricing.estimate, error=error,
                         artifacts=kept.artifacts, progress=progress, training_seconds=trained, detail=detail),
        "status:failed",
    )


def _cancelled(attempt: Attempt) -> Ended:
    ctx, pricing = attempt.ctx, attempt.setup.pricing
    kept = _kept(attempt)
    total = attempt.job.spec.training_params.epochs
    progress = _progress(attempt.job, f"Cancelled at epoch {kept.epochs}/{total}", kept.epochs)
    return _closing_write(
        ctx, attempt.background,
        lambda j: finish(j, ctx.number, EndReason.CANCELLED, utcnow(), pricing.rates, pricing.estimate,
                         artifacts=kept.artifacts, progress=progress, training_seconds=_trained(attempt),
                         detail=f"cancelled by {j.cancel.by}" if j.cancel else None),
        "status:cancelled",
    )


def _budget_stopped(attempt: Attempt) -> Ended:
    """The cost cap or a budget stopped the job at the checkpoint just uploaded: cancelled by ``budget``
    (orchestrator/domain/cost_cap.py words it), its last.pt kept for a Retry to continue from."""
    ctx, pricing = attempt.ctx, attempt.setup.pricing
    kept = _kept(attempt)
    total = attempt.job.spec.training_params.epochs
    progress = _progress(attempt.job, f"Stopped at epoch {kept.epochs}/{total}", kept.epochs)
    why = ctx.flags.budget_why  # a budget's words; None: the cap's, from the cost the write records
    return _closing_write(
        ctx, attempt.background,
        lambda j: budget_stop(j, ctx.number, utcnow(), pricing.rates, pricing.estimate, why=why,
                              progress=progress, artifacts=kept.artifacts, training_seconds=_trained(attempt)),
        "status:cancelled",
    )


def _timeout(attempt: Attempt) -> Ended:
    ctx, pricing = attempt.ctx, attempt.setup.pricing
    kept = _kept(attempt)
    limit = ctx.settings.TRAINING_TIMEOUT
    total = attempt.job.spec.training_params.epochs
    error = JobError(reason="timeout", message=(
        f"training time limit reached (TRAINING_TIMEOUT={limit:g} s over all executions) after "
        f"{kept.epochs}/{total} epochs; the last checkpoint is kept"))
    progress = _progress(attempt.job, f"Timed out at epoch {kept.epochs}/{total}", kept.epochs)
    return _closing_write(
        ctx, attempt.background,
        lambda j: finish(j, ctx.number, EndReason.TIMEOUT, utcnow(), pricing.rates, pricing.estimate, error=error,
                         artifacts=kept.artifacts, progress=progress, detail=error.message,
                         training_seconds=_trained(attempt)),
        "status:failed",
    )


def stalled(attempt: Attempt, idle: float) -> Ended:
    """The stall watchdog (worker/watchdog.py) saw no batch finish for STALL_SECONDS: requeue the job to
    resume from its last checkpoint. Runs on the watchdog's thread while training hangs; the fencing
    refuses whichever of this and a late close of the training thread comes second."""
    ctx = attempt.ctx
    attempt.background.stop(ctx.flags, flush=False, upload_wait=DEFAULT_UPLOAD_WAIT)  # the epoch's last.pt
    if ctx.flags.lost:
        return _lost(attempt)
    limit = ctx.settings.STALL_SECONDS
    why = f"no training batch finished for {idle:.0f} s (STALL_SECONDS={limit:g})"
    ended = _requeue(attempt, EndReason.STALLED, why)
    _wake_dispatcher(ctx, ended, "stalled")
    return ended


def _out_of_memory(attempt: Attempt, error: JobError) -> Ended:
    """Training ran out of memory: back to the queue with half the batch, from the last checkpoint, or failed
    with a hint once OOM_RETRIES are spent (orchestrator/domain/oom.py decides, inside the closing write)."""
    ctx, pricing, settings = attempt.ctx, attempt.setup.pricing, attempt.ctx.settings
    error = scrubbed(error, ctx.home)
    attempt.background.stop(ctx.flags, flush=True, upload_wait=DEFAULT_UPLOAD_WAIT)  # the last.pt the retry resumes
    if ctx.flags.lost:
        return Ended(EXIT_NOT_OURS)
    kept = _kept(attempt)
    progress = _progress(attempt.job, "Failed: out of memory", kept.epochs)
    ended = _closing_write(
        ctx, attempt.background,
        lambda j: after_out_of_memory(j, ctx.number, utcnow(), pricing.rates, settings.OOM_RETRIES,
                                      settings.MAX_RECOVERIES, pricing.estimate, detail=error.message,
                                      progress=progress, tail=error.tail, lost_seconds=round(kept.lost_seconds, 3),
                                      end_epoch=kept.epochs, artifacts=kept.artifacts,
                                      training_seconds=_trained(attempt)),
        "out_of_memory",
    )
    _wake_dispatcher(ctx, ended, "out_of_memory")
    return ended


def _requeue(attempt: Attempt, reason: EndReason, why: str) -> Ended:
    ctx, pricing = attempt.ctx, attempt.setup.pricing
    kept = _kept(attempt)
    detail = f"{why}; {kept.lost_seconds:.0f} s of training since the last checkpoint (epoch {kept.epochs}) is redone"
    return _closing_write(
        ctx, attempt.background,
        lambda j: requeue(j, ctx.number, reason, utcnow(), pricing.rates, ctx.settings.MAX_RECOVERIES,
                          pricing.estimate, detail=detail, lost_seconds=round(kept.lost_seconds, 3),
                          end_epoch=kept.epochs, artifacts=kept.artifacts, training_seconds=_trained(attempt)),
        "status:queued",
    )


def _continuation(attempt: Attempt) -> Ended:
    ctx, job = attempt.ctx, attempt.job
    epochs = _kept(attempt).epochs
    previous = job.attempts[-2] if len(job.attempts) > 1 else None
    if (epochs <= attempt.setup.start_epoch and previous is not None
            and previous.end_reason is EndReason.CONTINUATION and (previous.end_epoch or 0) >= epochs):
        # Two executions in a row without one finished epoch: continuing would loop for ever.
        window = ctx.settings.TASK_TIMEOUT - ctx.settings.TASK_TIMEOUT_MARGIN
        return fail(attempt, JobError(reason="task_timeout", message=(
            f"no epoch finishes within one execution ({window:g} s = TASK_TIMEOUT - TASK_TIMEOUT_MARGIN), "
            "twice in a row; use a smaller dataset, batch or input size, or raise TASK_TIMEOUT")))
    limit = ctx.settings.TASK_TIMEOUT
    ended = _requeue(attempt, EndReason.CONTINUATION, f"planned stop before the {limit:g} s execution limit")
    _wake_dispatcher(ctx, ended, "continuation")
    return ended


def _wake_dispatcher(ctx: Context, ended: Ended, reason: str) -> None:
    """Start the requeued job's next execution now rather than at the dispatcher's next scan."""
    if ended.code == EXIT_OK and ended.job is not None and ended.job.status is JobStatus.QUEUED:
        try:
            ctx.backend.queue.publish(ctx.task_id, reason=reason)
        except Exception:  # noqa: BLE001 - the dispatcher's scan finds the queued job anyway
            log.warning("could not publish the %s; the dispatcher's scan will pick it up", reason, exc_info=True)


# -- helpers -----------------------------------------------------------------------------------


def _kept(attempt: Attempt) -> Kept:
    """The newest checkpoint in the artifact store: this attempt's upload, else an earlier attempt's; and the
    training since it (only time in the training loop: set-up before it is overhead, see worker/timing.py)."""
    ctx, clock = attempt.ctx, attempt.background.clock
    uploaded = attempt.background.uploader.uploaded.get(LAST)
    if uploaded is not None:
        return Kept({"last_checkpoint": uploaded.uri}, uploaded.epochs_done, clock.lost_since(uploaded.saved_at))
    artifacts = {}
    if ctx.backend.artifacts.exists(ctx.task_id, LAST):  # from an earlier attempt
        artifacts["last_checkpoint"] = ctx.backend.artifacts.uri(ctx.task_id, LAST)
    return Kept(artifacts, attempt.setup.start_epoch, clock.lost_since(None))


def _trained(attempt: Attempt) -> float | None:
    """Seconds this attempt spent in the training loop (None: it never began), for the cost split."""
    return attempt.background.clock.seconds()


def _progress(job: Job, message: str, epochs: int) -> Progress:
    total = job.spec.training_params.epochs
    return Progress(epoch=epochs, total_epochs=total, progress_percent=round(100.0 * epochs / total, 2),
                    message=message)


def _closing_write(ctx: Context, background: Background | None, fn: Callable[[Job], Job | None], kind: str) -> Ended:
    if background is not None:
        background.stop(ctx.flags, flush=False)  # no heartbeat or progress may land after the closing write
    try:
        job = fenced.write(ctx.store, ctx.task_id, fn, kind)
    except NotOurs:
        log.error("closing transition %s refused: attempt %d is no longer current; nothing written", kind, ctx.number)
        return Ended(EXIT_NOT_OURS)
    except StoreError:
        log.exception("closing transition %s could not be written; the lease will expire", kind)
        return Ended(EXIT_STORE_ERROR)
    log.info("job %s is now %s (%s)", ctx.task_id, job.status.value, kind)
    return Ended(EXIT_OK, job)

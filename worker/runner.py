"""One attempt of one job, from taking it to exactly one closing transition: the wiring.

Flow: load the job and check that this attempt is its live one; prepare (worker/prepare.py:
offline environment, device and prices, the checkpoint to resume from); ``worker_started``;
open the attempt (heartbeat, progress and upload threads, W&B); training (dataset, starting
weights, Ultralytics: worker/training.py), which ends in an Outcome (worker/outcome.py); then
one closing write (worker/closing.py): completed, cancelled, timeout, failed (``finish``) or
interrupted, continuation (``requeue``). The attempt number is the fencing token: when any
transition is refused the attempt is no longer ours, and the worker stops without writing
anything more (worker/fenced.py, with the exit codes). A training loop that hangs is ended from the
stall watchdog's thread instead (``_stalled``, worker/watchdog.py): requeued, then the process exits.

Every write to the job goes through one ``WriteGate`` (worker/gate.py), shared with the
heartbeat and progress threads.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta

from orchestrator.backends import open_backend
from orchestrator.config import load_settings
from orchestrator.domain.job import Job, utcnow
from orchestrator.domain.transitions import worker_started
from orchestrator.stores.base import StoreError
from worker import closing, dataset_size, fenced, prepare, signals
from worker.closing import Ended
from worker.fenced import EXIT_NOT_OURS, EXIT_OK, EXIT_STORE_ERROR, NotOurs
from worker.outcome import Outcome, error_from, setup_failure, training_outcome
from worker.prepare import Attempt, Context
from worker.stop import StopFlags
from worker.watchdog import StallWatch

log = logging.getLogger(__name__)

__all__ = ["EXIT_NOT_OURS", "EXIT_OK", "EXIT_STORE_ERROR", "run", "run_attempt"]


def run(task_id: str, attempt: int, process_started: float | None = None) -> int:
    """Run attempt ``attempt`` of job ``task_id``; returns the process exit code."""
    started = time.monotonic() if process_started is None else process_started
    settings = load_settings()
    flags = StopFlags()
    handler = signals.install(flags)
    backend = open_backend(settings)
    try:
        return run_attempt(Context.open(settings, backend, task_id, attempt, flags, started, handler))
    finally:
        backend.close()


def run_attempt(ctx: Context) -> int:
    """Prepare, start, train and close the attempt ``ctx`` names; returns the process exit code."""
    job = _live_job(ctx)
    if job is None:
        return EXIT_NOT_OURS
    try:
        found = prepare.setup(ctx, job)
    except prepare.SetupFailed as failed:
        return closing.fail_unstarted(ctx, job, setup_failure(failed.cause, ctx.home, ctx.log_file),
                                      failed.pricing).code
    ctx.store.await_launch_record(ctx.task_id, ctx.number)  # the start keeps its distance from the launch record
    device, start_epoch = found.device.description, found.start_epoch
    # Billed from the process's start, not this write: imports and set-up are paid for too.
    began = utcnow() - timedelta(seconds=time.monotonic() - ctx.process_started)
    try:
        started = fenced.write(ctx.store, ctx.task_id, lambda j: worker_started(
            j, ctx.number, utcnow(), ctx.settings.LEASE_SECONDS, device, start_epoch, began), "worker_started")
    except NotOurs:
        log.error("attempt %d of %s was taken over before it started; exiting", ctx.number, ctx.task_id)
        return EXIT_NOT_OURS
    except StoreError:
        log.exception("could not record the start; the lease will expire and the job will be retried")
        return EXIT_STORE_ERROR
    log.info("attempt %d of %s started on %s (%s)", ctx.number, ctx.task_id, device,
             f"resuming after epoch {found.resume.epochs_done}" if found.resume else "fresh start")
    return _train_and_close(prepare.open_attempt(ctx, started, found))


def _live_job(ctx: Context) -> Job | None:
    """The job, when this attempt is its live, unstarted one; else None (logged)."""
    job = ctx.store.get(ctx.task_id)
    if job is None:
        log.error("job %s not found; nothing to do", ctx.task_id)
        return None
    # Same precondition worker_started will check, tested before spending a minute on imports.
    if worker_started(job, ctx.number, utcnow(), 1.0, "probe", 0) is None:
        current = job.current_attempt
        log.error("attempt %d of %s is not its live, unstarted attempt (status %s, current attempt %s); "
                  "exiting without writing", ctx.number, ctx.task_id, job.status.value,
                  current.number if current else None)
        return None
    return job


def _train_and_close(attempt: Attempt) -> int:
    """Train, then close exactly once; the threads and W&B end whatever happens."""
    ctx = attempt.ctx
    ended: Ended | None = None  # a local: set by the closing write
    try:
        if ctx.handler is not None:
            signals.ensure(ctx.handler)  # W&B, started just now, must not have replaced it
        ended = closing.close(attempt, _train(attempt))
    except Exception as exc:  # noqa: BLE001 - a bug of ours still ends the attempt cleanly
        log.exception("worker error")
        ended = closing.fail(attempt, error_from(exc, "worker_error", ctx.home, ctx.log_file))
    finally:
        attempt.background.stop(ctx.flags, flush=False)
        attempt.wandb.finish(ok=ended is None or not ended.failed)
    return ended.code


def _stalled(attempt: Attempt, idle: float) -> None:
    """The stall watchdog fired (its thread; training hangs): requeue the job, then end the process, hung
    training thread and all. W&B is left as it is: the next execution appends to the same run."""
    code = EXIT_STORE_ERROR  # if the closing itself raises: exit anyway, the dispatcher recovers the job
    try:
        code = closing.stalled(attempt, idle).code
    except Exception:  # noqa: BLE001 - a hung process must not outlive its watchdog
        log.exception("could not end the stalled attempt")
    finally:
        log.error("attempt %d of %s stalled; exiting with code %d", attempt.ctx.number, attempt.ctx.task_id, code)
        logging.shutdown()  # flush the log: os._exit skips it
        os._exit(code)


def _train(attempt: Attempt) -> Outcome:
    """The training step: checked inputs, then Ultralytics; every exception becomes an Outcome."""
    from worker.training import TrainingSession

    ctx, stop = attempt.ctx, attempt.stop_check
    try:
        inputs = prepare.inputs(attempt, stop)
        dataset_size.record(attempt, inputs.data_yaml)  # for the estimates of later jobs
        session = TrainingSession(
            spec=attempt.job.spec, batch=attempt.job.batch_size, data_yaml=inputs.data_yaml, run_dir=ctx.run_dir,
            device=attempt.setup.device,
            resume=attempt.setup.resume, stop=stop, reporter=attempt.background.reporter,
            uploader=attempt.background.uploader, wandb=attempt.wandb, weights=inputs.weights,
            clock=attempt.background.clock, attempt=ctx.number,
            watch=StallWatch(ctx.settings.STALL_SECONDS, lambda idle: _stalled(attempt, idle)),
        )
        return Outcome(completed=session.train())
    except Exception as exc:  # noqa: BLE001 - the job fails (or stops) with the error's words
        return training_outcome(exc, ctx.home, ctx.log_file)

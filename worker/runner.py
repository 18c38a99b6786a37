"""One attempt of one job, from taking it to exactly one closing transition.

Flow: load the job and check that this attempt is its live one; prepare the
offline environment, pick the device and look for a checkpoint to resume;
``worker_started``; heartbeat + progress + upload threads; dataset; training;
then one of: completed, cancelled, timeout, failed (``finish``) or
interrupted, continuation (``requeue``). The attempt number is the fencing
token: when any transition is refused the attempt is no longer ours, and the
worker stops without writing anything more.

Every write to the job goes through one ``WriteGate`` (worker/gate.py), shared
with the heartbeat and progress threads. The store itself keeps
``settings.write_gap`` (1 s on gcp) between any two writes to a job; the gate
plans around it: the worker's threads write one at a time, in turn, spaced by
the gap, and after the dispatcher's launch record, so they seldom wait inside
the store or race each other there.

Exit codes: 0 the worker wrote the job's final or requeued state itself;
3 the attempt was not (or no longer) ours; 1 the store could not be written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.backends import Backend, open_backend
from orchestrator.config import Settings, load_settings
from orchestrator.domain.job import EndReason, Job, JobError, Progress, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import cost_of, finish, heartbeat, requeue, worker_started
from orchestrator.launchers.local import log_path
from orchestrator.registry.base import ModelEntry
from orchestrator.stores.base import StoreError
from worker import checkpoints, datasets, offline, signals
from worker.checkpoints import BEST, LAST, CheckpointUploader
from worker.error_text import scrubbed, user_error_text
from worker.gate import GatedStore, WriteGate
from worker.gpu import GpuUnavailable
from worker.reporter import Heartbeat, ProgressReporter
from worker.stop import Budget, StopFlags, StopReason, TrainingStopped
from worker.wandb_log import WandbRun

if TYPE_CHECKING:  # imported at run time only after worker.offline.prepare()
    from worker.training import Device, TrainingSession

log = logging.getLogger(__name__)

EXIT_OK, EXIT_STORE_ERROR, EXIT_NOT_OURS = 0, 1, 3
WRITE_RETRY_DELAYS = (0.0, 0.5, 1.0, 2.0)  # store errors on an important write; short enough for SIGTERM's grace
TAIL_LINES = 15
UPLOAD_WAIT = {StopReason.SIGTERM: 4.0}  # seconds to wait for the last checkpoint upload; default below
DEFAULT_UPLOAD_WAIT = 120.0


class NotOurs(Exception):
    """A transition was refused: another execution owns the job now."""


@dataclass
class Outcome:
    """How training ended."""

    completed: bool = False
    stopped: StopReason | None = None
    error: JobError | None = None


def run(task_id: str, attempt: int, process_started: float | None = None) -> int:
    """Run attempt ``attempt`` of job ``task_id``; returns the process exit code."""
    started = time.monotonic() if process_started is None else process_started
    settings = load_settings()
    flags = StopFlags()
    handler = signals.install(flags)
    backend = open_backend(settings)
    try:
        return AttemptRunner(settings, backend, task_id, attempt, flags, started, handler).run()
    finally:
        backend.close()


def error_from(exc: BaseException, reason: str = "training_error", home: Path | None = None,
               log_file: Path | None = None) -> JobError:
    """What the user sees (worker/error_text.py): the exception and the job's own output, no server
    paths and no traceback; the traceback goes to the log (every caller logs it)."""
    message, tail = user_error_text(exc, home or Path.cwd(), log_file, TAIL_LINES)
    return JobError(reason=reason, message=message, tail=tail)


class AttemptRunner:
    """Holds one attempt's parts (threads, session, rates) and closes it exactly once."""

    def __init__(self, settings: Settings, backend: Backend, task_id: str, attempt: int, flags: StopFlags,
                 process_started: float, handler: signals.Handler | None = None):
        self.settings, self.backend = settings, backend
        self.gate = WriteGate(settings.write_gap)
        self.store = GatedStore(backend.store, self.gate)  # the heartbeat and the reporter get this one too
        self.task_id, self.attempt = task_id, attempt
        self.flags = flags
        self.process_started = process_started
        self.handler = handler
        self.home = settings.home
        self.job: Job | None = None
        self.session: TrainingSession | None = None
        self.resume: checkpoints.ResumePoint | None = None
        self.rates = self.estimate = None
        self.heartbeat: Heartbeat | None = None
        self.reporter: ProgressReporter | None = None
        self.uploader: CheckpointUploader | None = None
        self.wandb = WandbRun()
        self.budget: Budget | None = None
        self.closed = False  # the closing transition was written

    # -- the flow --------------------------------------------------------------

    def run(self) -> int:
        job = self.store.get(self.task_id)
        if job is None:
            log.error("job %s not found; nothing to do", self.task_id)
            return EXIT_NOT_OURS
        # Same precondition worker_started will check, tested before spending a minute on imports.
        if worker_started(job, self.attempt, utcnow(), 1.0, "probe", 0) is None:
            current = job.current_attempt
            log.error("attempt %d of %s is not its live, unstarted attempt (status %s, current attempt %s); "
                      "exiting without writing", self.attempt, self.task_id, job.status.value,
                      current.number if current else None)
            return EXIT_NOT_OURS
        self.job = job
        try:
            device = self._prepare()
        except checkpoints.BadWeights as exc:  # our own last.pt refused by the safe loader: never resume from it
            log.error("%s", exc)
            return self._close_failed(JobError(reason="bad_weights", message=str(exc)))
        except GpuUnavailable as exc:  # before any dataset work: fail within seconds, never train on the CPU
            log.error("%s", exc)
            return self._close_failed(JobError(reason="gpu_unavailable", message=str(exc)),
                                      EndReason.GPU_UNAVAILABLE)
        except Exception as exc:  # noqa: BLE001 - e.g. a bad YOLO_DEVICE: fail the job, say why
            log.exception("worker set-up failed")
            return self._close_failed(self._error(exc, "worker_error"))
        self._await_launch_record()
        try:
            started = self._write(lambda j: worker_started(j, self.attempt, utcnow(), self.settings.LEASE_SECONDS,
                                                           device.description, self._start_epoch()),
                                  "worker_started")
        except NotOurs:
            log.error("attempt %d of %s was taken over before it started; exiting", self.attempt, self.task_id)
            return EXIT_NOT_OURS
        except StoreError:
            log.exception("could not record the start; the lease will expire and the job will be retried")
            return EXIT_STORE_ERROR
        self.job = started
        log.info("attempt %d of %s started on %s (%s)", self.attempt, self.task_id, device.description,
                 f"resuming after epoch {self.resume.epochs_done}" if self.resume else "fresh start")
        self._start_background(started)
        try:
            self.wandb = WandbRun.start(self.settings, started, device.description)
            if self.handler is not None:
                signals.ensure(self.handler)
            outcome = self._train(device)
            return self._close(outcome)
        except Exception as exc:  # noqa: BLE001 - a bug of ours still ends the attempt cleanly
            log.exception("worker error")
            return EXIT_OK if self.closed else self._close_failed(self._error(exc, "worker_error"))
        finally:
            self._stop_background(flush=False)
            self.wandb.finish(ok=self.job is not None and self.job.status is not JobStatus.FAILED)

    def _await_launch_record(self) -> None:
        """With a write gap, let the dispatcher's launch record land before worker_started, and
        keep the gap after it. The dispatcher writes it one gap after the claim; a worker up
        sooner than that polls (reads) for it until a few gaps after the claim (it may never
        come: a crashed dispatcher, a test harness). Each read tells the gate when the job was
        last written."""
        gap = self.gate.gap
        if gap <= 0:
            return
        deadline = None
        while True:
            try:
                job = self.store.get(self.task_id)
            except StoreError:
                return  # the start write retries, and tells
            current = job.current_attempt if job is not None else None
            if current is None or current.number != self.attempt or current.execution is not None:
                return
            if deadline is None:  # wall clock, as claimed_at is; capped against a clock far ahead of ours
                deadline = min(current.claimed_at.timestamp(), time.time()) + 3 * gap
            if time.time() >= deadline:
                return
            time.sleep(min(0.1, gap))

    def _prepare(self) -> Device:
        """Offline environment, device, rates and resume point (before the attempt is marked started)."""
        offline.prepare(self.home)
        import ultralytics  # noqa: F401 - after prepare(): reads the offline switches at import

        offline.configure_ultralytics(self.home)
        from worker.training import pick_device

        # A job that asked for the CPU never needs a GPU; otherwise REQUIRE_GPU (on by default on Cloud Run).
        required = self.settings.require_gpu and self.job.spec.gpu_type != "cpu"
        device = pick_device(self.settings, require_gpu=required)
        configured = self.job.spec.gpu_type or self.settings.GPU_TYPE
        if device.is_gpu:
            self.rates, self.estimate = self.settings.rates(configured), None
        else:
            # Billed as CPU hardware, with what the same seconds would cost on the configured GPU.
            self.rates, self.estimate = self.settings.rates("cpu"), self.settings.rates(configured)
        weights = self._run_dir() / "train" / "weights"  # where Ultralytics will look for last.pt
        self.resume = checkpoints.fetch_resume(self.backend.artifacts, self.task_id, weights)
        return device

    def _start_epoch(self) -> int:
        return self.resume.epochs_done if self.resume else 0

    def _run_dir(self) -> Path:
        return self.home / "runs" / self.task_id

    def _budget(self, job: Job) -> Budget:
        now = time.monotonic()
        settings = self.settings
        continue_after = None
        if settings.TASK_TIMEOUT > 0:
            # The platform's clock started with the process, a little before this attempt's.
            continue_after = settings.TASK_TIMEOUT - settings.TASK_TIMEOUT_MARGIN - (now - self.process_started)
        prior = sum(a.billed_seconds for a in job.attempts[:-1])
        return Budget(started=now, prior_seconds=prior, training_timeout=settings.TRAINING_TIMEOUT,
                      continue_after=continue_after)

    def _start_background(self, job: Job) -> None:
        self.budget = self._budget(job)
        self.flags.budget = self.budget
        store, s = self.store, self.settings
        self.heartbeat = Heartbeat(store, self.task_id, self.attempt, s.LEASE_SECONDS, self.flags,
                                   cancel_poll=s.CANCEL_POLL_SECONDS)
        self.reporter = ProgressReporter(store, self.task_id, self.attempt, s.PROGRESS_INTERVAL, self.flags,
                                         cost=self._cost)
        self.uploader = CheckpointUploader(self.backend.artifacts, self.task_id,
                                           self._run_dir() / f".staging-{self.attempt}", self.flags)
        self.heartbeat.start()
        self.reporter.start()
        self.uploader.start()
        if job.status is JobStatus.CANCELLING:
            self.flags.set(StopReason.CANCEL)

    def _stop_background(self, flush: bool, upload_wait: float = 0.0, keep_heartbeat: bool = False) -> None:
        """Stop the threads (idempotent): progress flushed if asked, uploads given ``upload_wait`` seconds;
        the heartbeat too unless ``keep_heartbeat`` (it then runs until the closing write)."""
        if self.reporter is not None:
            self.reporter.stop(flush=flush)
        if self.uploader is not None:
            if upload_wait > 0 and not self.flags.lost and not self.uploader.drain(upload_wait):
                log.warning("checkpoint upload still pending after %.0f s; resuming from an older one", upload_wait)
            self.uploader.stop()
        if not keep_heartbeat and self.heartbeat is not None:
            self.heartbeat.stop()

    def _cost(self, job: Job):  # noqa: ANN202 - a CostSummary
        return cost_of(job, self.rates, self.estimate)

    # -- training ----------------------------------------------------------------

    def _train(self, device: Device) -> Outcome:
        from worker.training import TrainingSession

        try:
            # Generating a large synthetic dataset takes a while: stop requests are honoured between images.
            # The tenant's dataset is checked against its data roots again (the service did at submit)
            # and Ultralytics gets a sanitised copy of its data.yaml, in this job's run directory.
            data_yaml = datasets.resolve(self.job.spec, self.home, check=self.flags.check, backend=self.backend.name,
                                         access=datasets.DataAccess.of(self.settings, self.job.tenant_id),
                                         out_dir=self._run_dir())
            datasets.check(data_yaml)
            self.session = TrainingSession(
                spec=self.job.spec, data_yaml=data_yaml, run_dir=self._run_dir(), device=device,
                resume=self.resume, flags=self.flags, reporter=self.reporter, uploader=self.uploader,
                wandb=self.wandb, weights=self._starting_weights(),
            )
            self.session.train()
        except datasets.DatasetError as exc:
            log.error("dataset error: %s", exc)
            return Outcome(error=JobError(reason="dataset_error", message=str(exc)))
        except checkpoints.BadWeights as exc:
            log.error("bad weights: %s", exc)
            return Outcome(error=JobError(reason="bad_weights", message=str(exc)))
        except TrainingStopped as stop:
            log.info("training stopped: %s", stop.reason.value)
            return Outcome(stopped=stop.reason)
        except Exception as exc:  # noqa: BLE001 - the job fails with the error's words
            log.exception("training failed")
            # Ultralytics wraps dataset problems it finds itself as "Dataset '...' error".
            reason = "dataset_error" if str(exc).startswith("Dataset '") else "training_error"
            return Outcome(error=self._error(exc, reason))
        return Outcome(completed=True)

    def _starting_weights(self) -> Path | None:
        """model_params.weights as a checked local file (None when not given, or when resuming from last.pt)."""
        text = self.job.spec.model_params.weights
        if not text or self.resume is not None:
            return None
        tenant = self.job.tenant_id
        return checkpoints.fetch_weights(text, tenant, self.backend, self.settings.data_roots(tenant),
                                         self.home / "weights", self._run_dir() / "start-weights.pt")

    # -- closing -----------------------------------------------------------------

    def _error(self, exc: BaseException, reason: str) -> JobError:
        """The JobError a user sees for ``exc``, with this job's own output (local log) in its tail."""
        return error_from(exc, reason, self.home, log_path(self.home, self.task_id))

    def _write(self, fn: Callable[[Job], Job | None], kind: str) -> Job:
        """Apply a transition, retrying store errors; NotOurs when refused, StoreError when the store stays down."""
        error: StoreError | None = None
        for delay in WRITE_RETRY_DELAYS:
            time.sleep(delay)
            try:
                job = self.store.update(self.task_id, fn, kind=kind)
            except StoreError as exc:
                log.warning("store write %s failed: %s", kind, exc)
                error = exc
                continue
            if job is None:
                raise NotOurs(kind)
            return job
        assert error is not None
        raise error

    def _closing_write(self, fn: Callable[[Job], Job | None], kind: str) -> int:
        self._stop_background(flush=False)  # no heartbeat or progress may land after the closing write
        try:
            job = self._write(fn, kind)
        except NotOurs:
            log.error("closing transition %s refused: attempt %d is no longer current; nothing written",
                      kind, self.attempt)
            return EXIT_NOT_OURS
        except StoreError:
            log.exception("closing transition %s could not be written; the lease will expire", kind)
            return EXIT_STORE_ERROR
        log.info("job %s is now %s (%s)", self.task_id, job.status.value, kind)
        self.job, self.closed = job, True
        return EXIT_OK

    def _close(self, outcome: Outcome) -> int:
        if self.flags.lost or outcome.stopped is StopReason.LOST:
            self._stop_background(flush=False)
            log.error("attempt %d of %s lost (%s); exiting without writing", self.attempt, self.task_id,
                      self.flags.lost_why or "refused")
            return EXIT_NOT_OURS
        if outcome.completed:
            try:
                return self._close_completed()
            except Exception as exc:  # noqa: BLE001 - e.g. final checkpoint upload failed for good
                log.exception("could not store the results")
                return self._close_failed(self._error(exc, "artifact_error"))
        if outcome.error is not None:
            return self._close_failed(outcome.error)
        reason = outcome.stopped
        self._stop_background(flush=True, upload_wait=UPLOAD_WAIT.get(reason, DEFAULT_UPLOAD_WAIT))
        if self.flags.lost:
            return EXIT_NOT_OURS
        if reason is StopReason.CANCEL:
            return self._close_cancelled()
        if reason is StopReason.TIMEOUT:
            return self._close_timeout()
        if reason is StopReason.SIGTERM:
            return self._close_requeue(EndReason.INTERRUPTED, "SIGTERM received (preemption or stop)")
        return self._close_continuation()

    def _still_ours(self) -> bool:
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
            job = self.store.get(self.task_id)
        except StoreError:
            job = None
        now = utcnow()
        if (job is not None and job.status.is_active() and job.current_attempt is not None
                and job.current_attempt.number == self.attempt and job.current_attempt.ended_at is None
                and job.lease is not None and job.lease.attempt == self.attempt
                and (job.lease.expires_at - now).total_seconds() > self.settings.LEASE_SECONDS / 2):
            return not self.flags.lost
        try:
            self._write(lambda j: heartbeat(j, self.attempt, utcnow(), self.settings.LEASE_SECONDS), "heartbeat")
        except NotOurs:
            self.flags.set(StopReason.LOST, f"attempt {self.attempt} was taken over before its results were stored")
        except StoreError:
            log.warning("could not confirm the lease; the closing write will tell")
        return not self.flags.lost

    def _checkpoint(self) -> tuple[dict[str, Any], int, float]:
        """(artifacts, epochs the stored last.pt holds, seconds of training since it was saved)."""
        uploaded = self.uploader.uploaded.get(LAST) if self.uploader else None
        started = self.budget.started if self.budget else time.monotonic()
        if uploaded is not None:
            return {"last_checkpoint": uploaded.uri}, uploaded.epochs_done, time.monotonic() - uploaded.saved_at
        artifacts = {}
        if self.backend.artifacts.exists(self.task_id, LAST):  # from an earlier attempt
            artifacts["last_checkpoint"] = self.backend.artifacts.uri(self.task_id, LAST)
        return artifacts, self._start_epoch(), time.monotonic() - started

    def _progress(self, message: str, epochs: int | None = None) -> Progress:
        total = self.job.spec.training_params.epochs
        done = epochs if epochs is not None else self._start_epoch()
        return Progress(epoch=done, total_epochs=total, progress_percent=round(100.0 * done / total, 2),
                        message=message)

    def _close_completed(self) -> int:
        session, spec, job = self.session, self.job.spec, self.job
        # Epoch uploads must not land after the final ones; the lease stays alive through the final uploads.
        self._stop_background(flush=False, upload_wait=DEFAULT_UPLOAD_WAIT, keep_heartbeat=True)
        done = session.epochs_done
        uploader = self.uploader
        # Uploads and the registry are not fenced by the store: confirm the attempt is still ours first.
        if not self._still_ours():
            return self._close(Outcome(stopped=StopReason.LOST))
        last_uri = uploader.upload_now(LAST, session.last_path, done)
        best_path = session.best_path or session.last_path
        best_uri = uploader.upload_now(BEST, best_path, done)
        if self.flags.lost:
            return self._close(Outcome(stopped=StopReason.LOST))
        metrics = session.final_metrics
        name = spec.custom_name or f"{job.tenant_id}-{spec.model_params.architecture}"
        wandb_ref = self.wandb.log_model(best_path, name, {"task_id": self.task_id, "metrics": metrics,
                                                           "architecture": spec.model_params.architecture,
                                                           "epochs": done})
        self.wandb.summarize(metrics)
        artifacts: dict[str, Any] = {"last_checkpoint": last_uri, "best_checkpoint": best_uri,
                                     "wandb_url": self.wandb.url, "wandb_run": self.wandb.reference}
        detail = None
        try:
            entry = self.backend.registry.register(ModelEntry(
                tenant_id=job.tenant_id, name=name, task_id=self.task_id,
                architecture=spec.model_params.architecture, checkpoint=best_uri, metrics=metrics,
                wandb_artifact=wandb_ref,
            ))
            artifacts.update(registry_name=entry.name, registry_version=entry.version)
        except Exception as exc:  # noqa: BLE001 - the model is trained and stored; say what is missing
            log.exception("model registry unavailable")
            detail = f"not registered: {type(exc).__name__}: {exc}"[:300]
        log_file = log_path(self.home, self.task_id)
        if log_file.exists():
            artifacts["log"] = str(log_file)
        total = spec.training_params.epochs
        shown = f"; mAP50 {metrics['mAP50']:.3f}" if "mAP50" in metrics else ""
        early = "" if done >= total else f" (early stop after {done}/{total} epochs)"
        progress = Progress(epoch=done, total_epochs=total, progress_percent=100.0, message=f"Completed{early}{shown}")
        return self._closing_write(
            lambda j: finish(j, self.attempt, EndReason.COMPLETED, utcnow(), self.rates, self.estimate,
                             metrics=metrics, artifacts=artifacts, progress=progress, detail=detail),
            "status:completed",
        )

    def _close_failed(self, error: JobError, reason: EndReason = EndReason.FAILED) -> int:
        error = scrubbed(error, self.home)  # whoever built it: no server path reaches /status or Slack
        self._stop_background(flush=True, upload_wait=30.0)
        if self.flags.lost:
            return EXIT_NOT_OURS
        artifacts, epochs, _ = self._checkpoint() if self.uploader else ({}, self._start_epoch(), 0.0)
        progress = self._progress(f"Failed: {error.message}"[:200], epochs)
        return self._closing_write(
            lambda j: finish(j, self.attempt, reason, utcnow(), self.rates or self.settings.rates("cpu"),
                             self.estimate, error=error, artifacts=artifacts, progress=progress),
            "status:failed",
        )

    def _close_cancelled(self) -> int:
        artifacts, epochs, _ = self._checkpoint()
        progress = self._progress(f"Cancelled at epoch {epochs}/{self.job.spec.training_params.epochs}", epochs)
        return self._closing_write(
            lambda j: finish(j, self.attempt, EndReason.CANCELLED, utcnow(), self.rates, self.estimate,
                             artifacts=artifacts, progress=progress,
                             detail=f"cancelled by {j.cancel.by}" if j.cancel else None),
            "status:cancelled",
        )

    def _close_timeout(self) -> int:
        artifacts, epochs, _ = self._checkpoint()
        limit = self.settings.TRAINING_TIMEOUT
        total = self.job.spec.training_params.epochs
        error = JobError(reason="timeout", message=(
            f"training time limit reached (TRAINING_TIMEOUT={limit:g} s over all executions) after "
            f"{epochs}/{total} epochs; the last checkpoint is kept"))
        return self._closing_write(
            lambda j: finish(j, self.attempt, EndReason.TIMEOUT, utcnow(), self.rates, self.estimate, error=error,
                             artifacts=artifacts, progress=self._progress(f"Timed out at epoch {epochs}/{total}", epochs),
                             detail=error.message),
            "status:failed",
        )

    def _close_requeue(self, reason: EndReason, why: str) -> int:
        artifacts, epochs, lost = self._checkpoint()
        detail = f"{why}; {lost:.0f} s of training since the last checkpoint (epoch {epochs}) is redone"
        return self._closing_write(
            lambda j: requeue(j, self.attempt, reason, utcnow(), self.rates, self.settings.MAX_RECOVERIES,
                              self.estimate, detail=detail, lost_seconds=round(lost, 3), end_epoch=epochs,
                              artifacts=artifacts),
            "status:queued",
        )

    def _close_continuation(self) -> int:
        _, epochs, _ = self._checkpoint()
        previous = self.job.attempts[-2] if len(self.job.attempts) > 1 else None
        if (epochs <= self._start_epoch() and previous is not None
                and previous.end_reason is EndReason.CONTINUATION and (previous.end_epoch or 0) >= epochs):
            # Two executions in a row without one finished epoch: continuing would loop for ever.
            window = self.settings.TASK_TIMEOUT - self.settings.TASK_TIMEOUT_MARGIN
            return self._close_failed(JobError(reason="task_timeout", message=(
                f"no epoch finishes within one execution ({window:g} s = TASK_TIMEOUT - TASK_TIMEOUT_MARGIN), "
                "twice in a row; use a smaller dataset, batch or input size, or raise TASK_TIMEOUT")))
        limit = self.settings.TASK_TIMEOUT
        code = self._close_requeue(EndReason.CONTINUATION, f"planned stop before the {limit:g} s execution limit")
        if code == EXIT_OK and self.job.status is JobStatus.QUEUED:
            try:  # start the next execution now rather than at the dispatcher's next scan
                self.backend.queue.publish(self.task_id, reason="continuation")
            except Exception:  # noqa: BLE001 - the dispatcher's scan finds the queued job anyway
                log.warning("could not publish the continuation; the dispatcher's scan will pick it up",
                            exc_info=True)
        return code

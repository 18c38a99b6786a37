"""Move jobs through their lifecycle with the real transitions, as dispatcher and worker would.

For tests of the notifier and the blocks that need jobs in every state without
training anything: each helper is one compare-and-set through the store (or a
pure transition on a Job), so the change feed fires exactly as in production.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orchestrator.domain.cost import rates_for
from orchestrator.domain.job import EndReason, Job, JobError, Origin, Progress, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain import transitions as t
from orchestrator.stores.base import JobStore

RATES = rates_for("cpu", 0, "4000m", "16Gi")
ESTIMATE = rates_for("nvidia-l4", 1, "4000m", "16Gi")
TEAM = "T0LAXAI"


def slack_origin(user: str = "U0ALICE", channel: str = "C0TRAIN", thread_ts: str | None = None) -> Origin:
    return Origin(source="slack", user=user, team=TEAM, channel=channel, thread_ts=thread_ts, request_id="trig")


def make_job(epochs: int = 4, origin: Origin | None = None, **spec: Any) -> Job:
    return Job(tenant_id=TEAM, spec=JobSpec(tenant_id=TEAM, training_params={"epochs": epochs}, **spec),
               origin=origin or slack_origin(), progress=Progress(total_epochs=epochs, message="Queued"))


def _apply(store: JobStore | None, job: Job, fn, kind: str) -> Job:
    if store is None:
        result = fn(job)
        assert result is not None, f"{kind} refused for {job.status}"
        return result.model_copy(update={"version": job.version + 1})
    result = store.update(job.task_id, fn, kind=kind)
    assert result is not None, f"{kind} refused"
    return result


def start(job: Job, store: JobStore | None = None, device: str = "cpu", start_epoch: int = 0) -> Job:
    job = _apply(store, job, lambda j: t.claim(j, utcnow(), 600), "status:running")
    number = job.current_attempt.number
    return _apply(store, job, lambda j: t.worker_started(j, number, utcnow(), 60, device, start_epoch), "started")


def progress(job: Job, store: JobStore | None = None, epoch: int = 1, percent: float | None = None,
             loss: float | None = 1.5, metrics: dict[str, float] | None = None) -> Job:
    total = job.progress.total_epochs or job.spec.training_params.epochs
    percent = 100.0 * epoch / total if percent is None else percent
    number = job.current_attempt.number
    update = Progress(epoch=epoch, total_epochs=total, progress_percent=percent, loss=loss,
                      message=f"Epoch {epoch}/{total}")
    cost = t.cost_of(job, RATES, ESTIMATE)
    return _apply(store, job, lambda j: t.report_progress(j, number, update, metrics, utcnow(), cost), "progress")


def complete(job: Job, store: JobStore | None = None, metrics: dict[str, float] | None = None,
             artifacts: dict[str, Any] | None = None) -> Job:
    total = job.progress.total_epochs
    number = job.current_attempt.number
    final = Progress(epoch=total, total_epochs=total, progress_percent=100.0, message="Completed")
    metrics = metrics if metrics is not None else {"mAP50": 0.52, "mAP50-95": 0.31, "precision": 0.6, "recall": 0.5}
    artifacts = artifacts if artifacts is not None else {
        "best_checkpoint": f"/artifacts/{job.task_id}/best.pt", "registry_name": f"{TEAM}-yolo11n",
        "registry_version": 3}
    return _apply(store, job, lambda j: t.finish(j, number, EndReason.COMPLETED, utcnow() + timedelta(seconds=5),
                                                 RATES, ESTIMATE, metrics=metrics, artifacts=artifacts,
                                                 progress=final), "status:completed")


def fail(job: Job, store: JobStore | None = None, message: str = "CUDA out of memory",
         tail: list[str] | None = None) -> Job:
    number = job.current_attempt.number
    error = JobError(reason="training_error", message=message, tail=tail or ["Traceback...", "RuntimeError: boom"])
    return _apply(store, job, lambda j: t.finish(j, number, EndReason.FAILED, utcnow(), RATES, ESTIMATE, error=error),
                  "status:failed")


def interrupt(job: Job, store: JobStore | None = None, reason: EndReason = EndReason.INTERRUPTED,
              lost_seconds: float = 42.0, detail: str = "SIGTERM") -> Job:
    number = job.current_attempt.number
    epoch = job.progress.epoch
    return _apply(store, job, lambda j: t.requeue(j, number, reason, utcnow(), RATES, 3, ESTIMATE, detail=detail,
                                                  lost_seconds=lost_seconds, end_epoch=epoch), "status:queued")


def cancel(job: Job, store: JobStore | None = None, by: str = "U0ALICE") -> Job:
    job = _apply(store, job, lambda j: t.request_cancel(j, by, utcnow()), "cancel")
    if job.status.is_terminal():
        return job
    number = job.current_attempt.number
    return _apply(store, job, lambda j: t.finish(j, number, EndReason.CANCELLED, utcnow(), RATES, ESTIMATE),
                  "status:cancelled")

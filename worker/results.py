"""What a completed attempt stores before its closing write: final checkpoints, W&B model, registry entry.

Called by worker/closing.py once the attempt is confirmed still ours (uploads and the registry
are not fenced by the store). A registry failure does not fail the job: the model is trained and
stored, and the job's detail says what is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from orchestrator.domain.job import Progress
from orchestrator.registry.base import ModelEntry
from worker.baseline import baseline_of
from worker.checkpoints import BEST, LAST
from worker.outcome import Trained
from worker.prepare import Attempt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Results:
    """What the completed transition writes besides the metrics."""

    artifacts: dict[str, Any]
    progress: Progress
    detail: str | None  # what is missing (the registry entry), when something is


def store_results(attempt: Attempt, trained: Trained) -> Results | None:
    """Upload the final checkpoints, log the model to W&B, register it; None when the attempt was lost
    during the uploads (nothing more may be written)."""
    ctx, spec, wandb = attempt.ctx, attempt.job.spec, attempt.wandb
    uploader, done = attempt.background.uploader, trained.epochs_done
    last_uri = uploader.upload_now(LAST, trained.last_path, done)
    best_path = trained.best_path or trained.last_path
    best_uri = uploader.upload_now(BEST, best_path, done)
    if ctx.flags.lost:
        return None
    metrics = trained.metrics
    name = spec.custom_name or f"{attempt.job.tenant_id}-{spec.model_params.architecture}"
    wandb_ref = wandb.log_model(best_path, name, {"task_id": ctx.task_id, "metrics": metrics,
                                                  "architecture": spec.model_params.architecture, "epochs": done})
    wandb.summarize(metrics)
    artifacts: dict[str, Any] = {"last_checkpoint": last_uri, "best_checkpoint": best_uri,
                                 "wandb_url": wandb.url, "wandb_run": wandb.reference}
    detail = _register(attempt, name, best_uri, metrics, wandb_ref, artifacts)
    if ctx.log_file.exists():
        artifacts["log"] = str(ctx.log_file)
    total = spec.training_params.epochs
    shown = f"; mAP50 {metrics['mAP50']:.3f}" if "mAP50" in metrics else ""
    early = "" if done >= total else f" (early stop after {done}/{total} epochs)"
    progress = Progress(epoch=done, total_epochs=total, progress_percent=100.0, message=f"Completed{early}{shown}")
    return Results(artifacts, progress, detail)


def _register(attempt: Attempt, name: str, checkpoint: str, metrics: dict[str, float], wandb_ref: str | None,
              artifacts: dict[str, Any]) -> str | None:
    """Add the model to the registry (its name and version into ``artifacts``); else say what is missing."""
    job = attempt.job
    try:
        entry = attempt.ctx.backend.registry.register(ModelEntry(
            tenant_id=job.tenant_id, name=name, task_id=attempt.ctx.task_id,
            architecture=job.spec.model_params.architecture, checkpoint=checkpoint, metrics=metrics,
            wandb_artifact=wandb_ref, source=job.origin.source, submitted_by=job.origin.user,
            channel=job.origin.channel,
        ))
    except Exception as exc:  # noqa: BLE001 - the model is trained and stored; say what is missing
        log.exception("model registry unavailable")
        return f"not registered: {type(exc).__name__}: {exc}"[:300]
    artifacts.update(registry_name=entry.name, registry_version=entry.version,
                     baseline=baseline_of(attempt.ctx.backend.registry, attempt.ctx.backend.store, entry))
    return None

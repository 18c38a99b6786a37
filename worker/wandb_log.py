"""Weights & Biases logging for one job: per-epoch metrics and the best model as an artifact.

One W&B run per job (id = task_id, resume="allow"), so every execution of a
resumed job appends to the same run. Tenants share one W&B project, so every
name a tenant could pick carries the tenant: artifacts are
``<tenant digest>-<tenant>-<name>`` (the digest comes first, so no tenant's
name can spell another tenant's prefix) and runs ``<tenant>/<name>``; one
tenant's ``prod:best`` never moves another's. Offline by default (``WANDB_MODE``), under
``$LAXAI_HOME/wandb``; ``wandb sync`` can upload it later. W&B is a side
channel: every failure is logged as a warning and never fails the job.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from orchestrator.config import Settings
from orchestrator.domain.job import Job

log = logging.getLogger(__name__)

# Cheap run: no system-metrics sampler, no console capture, no code/git/requirements snapshots.
QUIET_SETTINGS: dict[str, Any] = {
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_disable_machine_info": True,
    "console": "off",
    "save_code": False,
    "disable_git": True,
    "disable_code": True,
    "x_save_requirements": False,
    "silent": True,
}


# W&B artifact names: letters, digits, '-', '_', '.'; at most 128 characters.
TENANT_CHARS, NAME_CHARS = 32, 80


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _slug(text: str, limit: int) -> str:
    """W&B-safe characters only; past ``limit`` cut, with a digest of the whole so cuts stay apart."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    if len(slug) > limit:
        slug = slug[: limit - 9].rstrip("-.") + "-" + _digest(text)
    return slug


def artifact_name(tenant: str, name: str) -> str:
    """The W&B artifact name of ``tenant``'s model ``name``: unique per (tenant, name).

    The tenant's digest leads at a fixed width, so two tenants' names differ there whatever
    either picks as ``name`` (a readable tenant alone could be spelled inside another's name)."""
    return f"{_digest(tenant)}-{_slug(tenant, TENANT_CHARS) or 'tenant'}-{_slug(name, NAME_CHARS) or 'model'}"


def run_name(job: Job) -> str:
    """The run's display name, with its tenant (W&B allows any text here)."""
    return f"{job.tenant_id}/{job.spec.display_name}"


class WandbRun:
    """A W&B run that turns itself off at the first error."""

    def __init__(self, tenant: str = "") -> None:
        self.run: Any = None
        self.tenant = tenant  # every artifact name carries it

    @classmethod
    def start(cls, settings: Settings, job: Job, device: str) -> WandbRun:
        self = cls(job.tenant_id)
        if settings.WANDB_MODE == "disabled":
            return self
        try:
            import wandb

            known = getattr(wandb.Settings, "model_fields", {})
            quiet = {k: v for k, v in QUIET_SETTINGS.items() if not known or k in known}
            settings.home.mkdir(parents=True, exist_ok=True)
            spec = job.spec
            self.run = wandb.init(
                project=settings.WANDB_PROJECT,
                id=job.task_id,
                resume="allow",  # a continuation appends to the run its first execution opened
                name=run_name(job),
                group=job.tenant_id,
                job_type="train",
                tags=list(spec.wandb_tags),
                dir=str(settings.home),  # W&B adds its own "wandb/" below it
                mode=settings.WANDB_MODE,
                config={**spec.model_dump(mode="json"), "task_id": job.task_id, "device": device},
                settings=wandb.Settings(**quiet),
            )
        except Exception as exc:  # noqa: BLE001 - W&B never fails a job
            log.warning("W&B disabled for this run: %s: %s", type(exc).__name__, exc)
            self.run = None
        return self

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.run is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - W&B never fails a job
            log.warning("W&B %s failed, W&B logging stops here: %s: %s", what, type(exc).__name__, exc)
            self.run = None
            return None

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        """Metrics of one finished epoch, at step = epoch so continuations line up."""
        self._guard("log", lambda: self.run.log({**values, "epoch": epoch}, step=epoch))

    def log_model(self, path: Path, name: str, metadata: dict[str, Any]) -> str | None:
        """The best checkpoint as a 'model' artifact aliased best, latest and job-<task id>; returns its
        reference (by the job's alias, so it names this version)."""

        def log_it() -> str:
            import wandb

            named = artifact_name(self.tenant, name)
            artifact = wandb.Artifact(named, type="model", metadata={**metadata, "tenant": self.tenant})
            artifact.add_file(str(path), name="best.pt")
            # A per-job alias names this very version: a Promote later adds "production" to it.
            job_alias = f"job-{_slug(str(metadata.get('task_id') or 'run'), 64)}"
            self.run.log_artifact(artifact, aliases=["best", "latest", job_alias])
            return f"{named}:{job_alias}"

        return self._guard("artifact", log_it)

    def summarize(self, metrics: dict[str, float]) -> None:
        self._guard("summary", lambda: self.run.summary.update({f"final/{k}": v for k, v in metrics.items()}))

    @property
    def url(self) -> str | None:
        """The run's page; None offline (asking an offline run logs a warning, so we don't)."""
        return self._guard("url", lambda: None if self.run.offline else self.run.url)

    @property
    def reference(self) -> str | None:
        """Where to find the run: entity/project/id online, the local run dir offline (for ``wandb sync``)."""

        def ref() -> str:
            return str(self.run.sync_dir) if self.run.offline else str(self.run.path)

        return self._guard("reference", ref)

    def finish(self, ok: bool) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        try:
            run.finish(exit_code=0 if ok else 1)
        except Exception as exc:  # noqa: BLE001
            log.warning("W&B finish failed: %s: %s", type(exc).__name__, exc)

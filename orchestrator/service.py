"""JobService: the operations every front end offers (REST, Slack, CLI).

Submit validates, stores the job and publishes a wake-up, and returns at once:
nothing here waits for training. The store write comes first, so a queue
failure can delay a job (the dispatcher also scans the store) but never lose it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from orchestrator.backends import Backend
from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.domain.job import Job, Origin, Progress, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import request_cancel
from orchestrator.launchers.local import log_path
from orchestrator.registry.base import ModelEntry

log = logging.getLogger(__name__)


class NotFound(LookupError):
    """No such job for this tenant (another tenant's job is reported the same way)."""


class Conflict(RuntimeError):
    """The job is not in a state that allows this."""


def check_dataset(spec: JobSpec, backend_name: str) -> None:
    """Refuse datasets this backend cannot read, before anything is stored."""
    dataset = spec.dataset
    if spec.synthetic_images() is not None:
        return
    if dataset.startswith("gs://"):
        if backend_name != "gcp":
            raise SpecError([FieldError("dataset", "gs:// datasets need the gcp backend; locally use "
                                        "'synthetic', a data.yaml path or a dataset directory")])
        return
    if "://" in dataset:
        raise SpecError([FieldError("dataset", "must be 'synthetic', 'synthetic:N', a data.yaml path, "
                                    "a dataset directory or a gs:// URI")])
    if backend_name == "local":
        path = Path(dataset).expanduser()
        if not path.exists():
            raise SpecError([FieldError("dataset", f"no such file or directory: {dataset}")])
        if path.is_file() and path.suffix not in (".yaml", ".yml"):
            raise SpecError([FieldError("dataset", "a file dataset must be a data.yaml")])
    weights = spec.model_params.weights
    if weights and backend_name == "local" and not Path(weights).expanduser().is_file():
        raise SpecError([FieldError("model_params.weights", f"no such checkpoint file: {weights}")])


class JobService:
    """Submit, inspect, cancel and retry jobs for one backend."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.store = backend.store
        self.settings = backend.settings

    # -- submit -----------------------------------------------------------

    def submit(self, spec: JobSpec, origin: Origin, idempotency_key: str | None = None,
               retry_of: str | None = None) -> tuple[Job, bool]:
        """Store and enqueue a job; (job, created). A reused idempotency key returns the first job."""
        check_dataset(spec, self.backend.name)
        job = Job(
            tenant_id=spec.tenant_id,
            spec=spec,
            origin=origin,
            retry_of=retry_of,
            idempotency_key=idempotency_key,
            progress=Progress(total_epochs=spec.training_params.epochs, message="Queued"),
        )
        job, created = self.store.create(job)
        if created:
            self.wake(job.task_id)
        return job, created

    def wake(self, task_id: str) -> None:
        """Tell the dispatcher to look; a failure only delays dispatch (the store is scanned too)."""
        try:
            self.backend.queue.publish(task_id)
        except Exception:  # noqa: BLE001 - the job is stored; the dispatcher's scan will find it
            log.warning("queue publish failed for %s; the dispatcher's scan will pick it up", task_id,
                        exc_info=True)

    # -- read -------------------------------------------------------------

    def get(self, tenant_id: str, task_id: str) -> Job:
        job = self.store.get(task_id)
        if job is None or job.tenant_id != tenant_id:
            raise NotFound(task_id)
        return job

    def list(self, tenant_id: str, statuses: Iterable[JobStatus] | None = None, channel: str | None = None,
             limit: int = 50) -> list[Job]:
        return self.store.list(tenant_id=tenant_id, statuses=statuses, channel=channel, limit=limit)

    def logs(self, tenant_id: str, task_id: str, tail: int = 200) -> list[str]:
        job = self.get(tenant_id, task_id)
        path = log_path(self.settings.home, job.task_id)
        if not path.exists():
            return []
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            text = handle.read().decode("utf-8", "replace")
        # Ultralytics redraws progress bars with \r: keep only the last state of each line.
        lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
        return [line for line in lines if line.strip()][-tail:]

    def models(self, tenant_id: str, name: str | None = None) -> list[ModelEntry]:
        return self.backend.registry.list(tenant_id, name)

    # -- control ----------------------------------------------------------

    def cancel(self, tenant_id: str, task_id: str, by: str) -> tuple[Job, bool]:
        """Ask a job to stop; (job, changed). Cancelling a finished job changes nothing."""
        self.get(tenant_id, task_id)
        changed = self.store.update(task_id, lambda j: request_cancel(j, by, utcnow()), kind="cancel")
        if changed is None:
            return self.get(tenant_id, task_id), False
        return changed, True

    def retry(self, tenant_id: str, task_id: str, origin: Origin | None = None,
              idempotency_key: str | None = None) -> Job:
        """A new job with the same spec, linked to the original."""
        original = self.get(tenant_id, task_id)
        if not original.status.is_terminal():
            raise Conflict(f"job {task_id} is {original.status.value}; only finished jobs can be retried")
        base = origin or original.origin
        # A retry of a Slack job lives in the original's thread.
        if original.origin.source == "slack" and (origin is None or origin.source == "slack"):
            # A retry of a retry already lives in a thread: keep to its root (Slack threads
            # are one level deep; card_ts is then a reply's ts, not a thread).
            thread = (original.origin.thread_ts or original.notify.get("card_ts")
                      or (origin.thread_ts if origin is not None else None))
            base = base.model_copy(update={"channel": original.origin.channel, "thread_ts": thread,
                                           "team": original.origin.team})
        job, _ = self.submit(original.spec, base, idempotency_key=idempotency_key, retry_of=original.task_id)
        return job

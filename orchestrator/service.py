"""JobService: the operations every front end offers (REST, Slack, CLI).

Submit validates, stores the job and publishes a wake-up, and returns at once:
nothing here waits for training. The store write comes first, so a queue
failure can delay a job (the dispatcher also scans the store) but never lose it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from orchestrator.backends import Backend, gpu_types_available
from orchestrator.domain.cost_cap import stopped_for_budget
from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.domain.job import Job, Origin, Progress, utcnow
from orchestrator.domain.lineage import Lineage, keeps_checkpoint, lineage_after
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import approve, hold_for_approval, reject, request_cancel
from orchestrator.estimates import Estimator
from orchestrator.launchers.local import log_path
from orchestrator.spending import Spending
from orchestrator.trust import checks as trust_checks

log = logging.getLogger(__name__)

# Where a retry of a front end's job reports: the original job -> its thread, or None.
RetryThread = Callable[[Job], "str | None"]


class NotFound(LookupError):
    """No such job for this tenant (another tenant's job is reported the same way)."""


class Conflict(RuntimeError):
    """The job is not in a state that allows this."""


class NotAllowed(PermissionError):
    """The caller may not do this (e.g. approve a held job without being an admin); nothing changed."""


class QueueFull(RuntimeError):
    """The tenant already has MAX_QUEUED_PER_TENANT jobs queued; nothing was stored."""

    def __init__(self, limit: int, queued: int):
        self.limit, self.queued = limit, queued
        super().__init__(f"too many queued jobs: {queued} of yours are waiting and MAX_QUEUED_PER_TENANT is "
                         f"{limit}; wait for some to start, or cancel some, then submit again")


def check_dataset(spec: JobSpec, backend: Backend) -> None:
    """Refuse a dataset or starting weights the tenant may not read, before anything is stored
    (orchestrator/trust: data roots, dataset prefixes, the accepted forms of weights)."""
    trust_checks.check_dataset(spec, backend)
    trust_checks.check_weights(spec, backend)


def check_gpu_type(spec: JobSpec, available: tuple[str, ...]) -> None:
    """Refuse a gpu_type this deployment cannot run (a Cloud Run job has one GPU type), before anything
    is stored: it would run on other hardware and be priced as the one asked for."""
    if spec.gpu_type is not None and spec.gpu_type not in available:
        raise SpecError([FieldError("gpu_type", f"{spec.gpu_type!r} is not available on this deployment; "
                                    f"available: {', '.join(available)}")])


class JobService:
    """Submit, inspect, cancel and retry jobs for one backend."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.store = backend.store
        self.settings = backend.settings
        # Front-end hooks by origin source: where a retry of such a job reports (see retry()).
        self.retry_threads: dict[str, RetryThread] = {}
        self.estimates = Estimator(backend)  # the estimate before launch, set on every new job
        self.spending = Spending(backend)  # budgets: a job over one waits for an admin (approve/reject)

    # -- submit -----------------------------------------------------------

    def submit(self, spec: JobSpec, origin: Origin, idempotency_key: str | None = None,
               retry_of: str | None = None, resume_from: str | None = None,
               lineage: Lineage | None = None) -> tuple[Job, bool]:
        """Store and enqueue a job; (job, created). A reused idempotency key returns the first job.
        ``resume_from``: a job of the same tenant whose last.pt this one continues from (a Retry of a cost stop);
        ``lineage``: a retry's place in its chain (orchestrator/domain/lineage.py)."""
        check_dataset(spec, self.backend)
        check_gpu_type(spec, gpu_types_available(self.settings))
        job = Job(
            tenant_id=spec.tenant_id,
            spec=spec,
            origin=origin,
            retry_of=retry_of,
            resume_from=resume_from,
            lineage=lineage,
            idempotency_key=idempotency_key,
            progress=Progress(total_epochs=spec.training_params.epochs, message="Queued"),
        )
        self.check_queue_room(job.tenant_id, idempotency_key)
        job = self.estimates.attach(job)
        job = self.hold_if_over_budget(job)
        job, created = self.store.create(job)
        if created and job.status is JobStatus.QUEUED:  # a held job waits for approve() to wake it
            self.wake(job.task_id)
        return job, created

    def hold_if_over_budget(self, job: Job) -> Job:
        """The job as it is stored: awaiting_approval, naming the budgets its estimate would cross, or as is."""
        over = self.spending.check(job)
        return (hold_for_approval(job, over, utcnow()) or job) if over else job

    def check_queue_room(self, tenant_id: str, idempotency_key: str | None = None) -> None:
        """Refuse a new job of a tenant that has MAX_QUEUED_PER_TENANT queued already (QueueFull).
        A request repeating a stored idempotency key is let through: the store answers it.
        Two submissions racing at the limit may both pass: it bounds a backlog, not a budget."""
        limit = self.settings.MAX_QUEUED_PER_TENANT
        queued = self.store.count_queued(tenant_id, at_most=limit)
        if queued < limit or (idempotency_key and self.store.by_idempotency_key(tenant_id, idempotency_key)):
            return
        raise QueueFull(limit, queued)

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

    # -- control ----------------------------------------------------------

    def cancel(self, tenant_id: str, task_id: str, by: str) -> tuple[Job, bool]:
        """Ask a job to stop; (job, changed). Cancelling a finished job changes nothing."""
        self.get(tenant_id, task_id)
        changed = self.store.update(task_id, lambda j: request_cancel(j, by, utcnow()), kind="cancel")
        if changed is None:
            return self.get(tenant_id, task_id), False
        return changed, True

    def approve(self, tenant_id: str, task_id: str, by: str, admin: bool) -> Job:
        """An admin lets a job held by a budget run: awaiting_approval -> queued, and the dispatcher is woken.
        NotAllowed for a non-admin, Conflict when the job is not awaiting approval."""
        return self._decide(tenant_id, task_id, by, admin, lambda j: approve(j, by, utcnow()), "approve")

    def reject(self, tenant_id: str, task_id: str, by: str, admin: bool, reason: str | None = None) -> Job:
        """An admin refuses a held job: it ends cancelled with the reason. NotAllowed / Conflict as approve."""
        return self._decide(tenant_id, task_id, by, admin, lambda j: reject(j, by, utcnow(), reason), "reject")

    def _decide(self, tenant_id: str, task_id: str, by: str, admin: bool, move: Callable[[Job], Job | None],
                verb: str) -> Job:
        self.get(tenant_id, task_id)  # another tenant's job: NotFound, whoever asks
        if not admin:
            raise NotAllowed(f"only an admin may {verb} a job held by a budget")
        changed = self.store.update(task_id, move, kind=verb)
        if changed is None:
            current = self.get(tenant_id, task_id)
            decided = current.approval and current.approval.decision
            raise Conflict(f"job {task_id} is {current.status.value}; only a job awaiting approval can be "
                           f"{verb.rstrip('e')}ed" + (f" (it was {decided} by {current.approval.decided_by})"
                                                      if decided else ""))
        if changed.status is JobStatus.QUEUED:
            self.wake(task_id)
        return changed

    def give_retries_threads(self, source: str, thread_of: RetryThread) -> None:
        """A front end's hook: ``thread_of(original)`` is the thread a retry of its job reports in
        (e.g. the Slack extension's: the original's card), or None when it doesn't know yet."""
        self.retry_threads[source] = thread_of

    def retry(self, tenant_id: str, task_id: str, origin: Origin | None = None,
              idempotency_key: str | None = None, spec: JobSpec | None = None) -> Job:
        """A new job with the same spec (or ``spec``: Retry with changes), linked to the original."""
        original = self.get(tenant_id, task_id)
        if spec is not None and spec.tenant_id != original.tenant_id:
            raise SpecError([FieldError("tenant_id", "a retry stays in the original job's tenant")])
        spec = spec or original.spec
        lineage = lineage_after(original.task_id, original.lineage, original.spec, spec)
        if not original.status.is_terminal():
            raise Conflict(f"job {task_id} is {original.status.value}; only finished jobs can be retried")
        base = origin or original.origin
        # A retry of a Slack job lives in the original's thread.
        if original.origin.source == "slack" and (origin is None or origin.source == "slack"):
            # A retry of a retry already lives in a thread: keep to its root (Slack threads
            # are one level deep; its card's ts is then a reply's ts, not a thread). The card is
            # front-end state: only the front end's hook knows it.
            thread_of = self.retry_threads.get("slack")
            thread = (original.origin.thread_ts or (thread_of(original) if thread_of else None)
                      or (origin.thread_ts if origin is not None else None))
            base = base.model_copy(update={"channel": original.origin.channel, "thread_ts": thread,
                                           "team": original.origin.team})
        # A job its cost cap or a budget stopped continues from its checkpoint: the epochs paid for stay done.
        # (One stopped before its first checkpoint passes on the one it resumed from.)
        # A retry that changes what is trained (epochs, lr, the data...) starts over.
        resume = None
        if stopped_for_budget(original) and keeps_checkpoint(lineage.changes):
            resume = original.task_id if original.artifacts.last_checkpoint else original.resume_from
        job, _ = self.submit(spec, base, idempotency_key=idempotency_key, retry_of=original.task_id,
                             resume_from=resume, lineage=lineage)
        return job

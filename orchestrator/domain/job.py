"""The Job record: a pure, serialisable snapshot of one training job.

A job may run as several executions (attempts): each one resumes from the last
checkpoint after an interruption, a lost worker or a planned continuation. The
record holds no I/O handles; stores persist it and transitions produce new
versions of it. Pure domain code.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.domain.epochs import EpochRow
from orchestrator.domain.lineage import Lineage
from orchestrator.domain.model_versions import Baseline
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_task_id() -> str:
    return str(uuid.uuid4())


class Record(BaseModel):
    """Frozen pydantic model that ignores unknown fields on load, so old records
    written by a newer version still load (rolling deploys)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class EndReason(str, enum.Enum):
    """Why one execution (attempt) of a job ended."""

    COMPLETED = "completed"  # training finished
    FAILED = "failed"  # training raised an error
    CANCELLED = "cancelled"  # stopped at a user's request
    TIMEOUT = "timeout"  # the job's TRAINING_TIMEOUT was reached
    INTERRUPTED = "interrupted"  # SIGTERM (preemption, Cloud Run stop); resumes
    CONTINUATION = "continuation"  # planned stop before the task time cap; resumes
    LEASE_EXPIRED = "lease_expired"  # worker stopped heartbeating (killed, machine lost)
    LAUNCH_FAILED = "launch_failed"  # the execution could not be started
    # CUDA out of memory in training, or the kernel killed the worker over WORKER_MEMORY_LIMIT: the job goes back
    # to the queue with half the batch, OOM_RETRIES times at most, then fails (orchestrator/domain/oom.py)
    OUT_OF_MEMORY = "out_of_memory"
    GPU_UNAVAILABLE = "gpu_unavailable"  # REQUIRE_GPU and no CUDA device visible; fails the job, no retry
    DIVERGED = "diverged"  # the training loss became NaN or infinite (worker/watchdog.py); fails the job, no retry
    STALLED = "stalled"  # heartbeating, but no batch finished for STALL_SECONDS (worker/watchdog.py); resumes

    @property
    def resumes(self) -> bool:
        """Whether the job may go back to the queue after an attempt ends this way (out of memory: while
        OOM_RETRIES and the batch allow, orchestrator/domain/oom.py decides)."""
        return self in (EndReason.INTERRUPTED, EndReason.CONTINUATION, EndReason.LEASE_EXPIRED,
                        EndReason.LAUNCH_FAILED, EndReason.STALLED, EndReason.OUT_OF_MEMORY)

    @property
    def counts_as_recovery(self) -> bool:
        """Lost executions count against MAX_RECOVERIES; planned continuations don't, nor do failed
        launches (nothing ran: MAX_LAUNCH_ATTEMPTS in a row bounds those)."""
        return self in (EndReason.INTERRUPTED, EndReason.LEASE_EXPIRED, EndReason.STALLED)


class Progress(Record):
    """Where a run is; the seed's response format plus live training figures."""

    epoch: int = 0
    total_epochs: int = 0
    progress_percent: float = 0.0
    message: str = "Queued"
    batch: int | None = None
    batches: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    updated_at: datetime | None = None


class Attempt(Record):
    """One execution of the job: from claim to its end."""

    number: int
    claimed_at: datetime
    execution: str | None = None  # launcher's handle: "local:<pid>" or a Cloud Run execution name
    started_at: datetime | None = None  # the worker process began
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    detail: str | None = None  # human words on why it ended
    start_epoch: int = 0  # epochs already done when it started (resume point)
    end_epoch: int | None = None
    device: str | None = None  # what it trained on, e.g. "cpu" or "cuda:0 NVIDIA L4"
    lost_seconds: float | None = None  # training time since the last checkpoint, lost on interruption
    # The cost split (orchestrator/domain/cost_split.py): when this attempt's training loop began and
    # its newest checkpoint was saved (the worker's clock, stamped on its progress writes), and how long
    # the loop ran in all (its closing write; None: the worker never closed it, e.g. it was lost).
    training_started_at: datetime | None = None
    checkpoint_at: datetime | None = None
    training_seconds: float | None = None
    # When the dispatcher saw the execution ended, having stopped it or found it exited (13R): its GPU
    # bills no more. None when the worker closed the attempt itself, or the end was never seen.
    stopped_at: datetime | None = None
    batch_size: int | None = None  # the batch it trained with (set at claim; None: stored before it was recorded)

    @property
    def billed_seconds(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.ended_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())


class Lease(Record):
    """Who may write progress for the job now, and until when."""

    attempt: int
    expires_at: datetime
    heartbeat_at: datetime | None = None


class JobError(Record):
    """Why a job failed, in words a person can act on."""

    reason: str  # machine-readable: timeout, training_error, lease_expired, dataset_error...
    # bad_weights: a checkpoint the worker would load (model_params.weights, a registry: or task:
    # reference, or the job's own last.pt) was refused by the safe loader, is not the tenant's, or
    # is unavailable; nothing in it ran (worker/checkpoints.py).
    message: str
    tail: list[str] = Field(default_factory=list)  # last lines of the error output


class CostSummary(Record):
    """What the job cost so far (or in all, once finished)."""

    billed_seconds: float = 0.0
    gpu_type: str = "cpu"  # the hardware it was billed as
    usd: float = 0.0
    usd_per_second: float = 0.0
    # For runs on other hardware than configured (e.g. a laptop CPU): the same
    # seconds priced on the configured GPU type.
    estimate_gpu_type: str | None = None
    estimate_usd: float | None = None
    # Where the money went, summed over all attempts: billed_seconds = training_s + overhead_s +
    # lost_s (orchestrator/domain/cost_split.py says the rule), each priced at its attempt's rates.
    training_s: float = 0.0  # in the training loop, kept (checkpointed or finished)
    overhead_s: float = 0.0  # start, imports, data, checkpoint and registry uploads
    lost_s: float = 0.0  # training redone after an interruption or a lost worker
    training_usd: float = 0.0
    overhead_usd: float = 0.0
    lost_usd: float = 0.0


class Estimate(Record):
    """What the job should cost, worked out before it runs (the rule: orchestrator/domain/estimate.py)."""

    seconds: float  # predicted billed seconds of the whole job: what cost.billed_seconds should say at the end
    usd: float
    low_usd: float
    high_usd: float
    # "history" (from ``samples`` similar completed runs), "history_dataset" (per-epoch time of ``samples``
    # earlier runs on this dataset, its image count unknown), "prior" (documented figures, no similar runs),
    # "guess" (the prior, and the dataset's size unknown too)
    basis: str
    samples: int = 0
    gpu_type: str = "cpu"  # the hardware it is priced as (what its cost will be billed as)
    images: int | None = None  # the dataset's training images the figure assumed (None: per-epoch figure)


class Artifacts(Record):
    """Where the results are."""

    last_checkpoint: str | None = None
    best_checkpoint: str | None = None
    registry_name: str | None = None
    registry_version: int | None = None
    wandb_url: str | None = None
    wandb_run: str | None = None
    log: str | None = None
    # The best earlier version of the same model name, for the completion reply's comparison: picked by
    # the worker when it registers the model, stored with the completed write (domain/model_versions.py).
    baseline: Baseline | None = None


class BudgetCrossing(Record):
    """One budget a held job's estimate would take over (orchestrator/domain/budget.py)."""

    scope: Literal["tenant", "channel", "user"]
    key: str
    limit_usd: float
    period: Literal["week", "month"]
    spent_usd: float  # actual cost of the period's jobs plus the estimates of those still to run
    estimate_usd: float  # what this job would add


class Approval(Record):
    """Why a job waits for an admin, and what was decided (status awaiting_approval)."""

    budgets: list[BudgetCrossing] = Field(default_factory=list)  # the budgets it would cross
    requested_at: datetime
    decision: Literal["approved", "rejected"] | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None  # a rejection's words


class Origin(Record):
    """Who submitted the job and from where; Slack jobs carry their thread."""

    source: Literal["api", "cli", "slack"] = "api"
    user: str | None = None
    team: str | None = None
    channel: str | None = None
    # The Slack thread this job's card goes in, fixed at submit: a retry's (the original's thread) or
    # a form opened inside a thread; None for a new top-level card (its ts is the front end's own record).
    thread_ts: str | None = None
    request_id: str | None = None


class CancelRequest(Record):
    by: str  # who asked: a user, "api:<tenant>", or "budget" (the cost cap or a budget: cost_cap.py)
    at: datetime
    detail: str | None = None  # a budget stop's words, e.g. "stopped at the cost cap: $5.02 spent of $5.00"


class IdempotencyKeyReused(SpecError):
    """An idempotency key already used for another request (another body, or another job retried)."""

    code = "idempotency_key_reused"

    def __init__(self, key: str):
        super().__init__([FieldError("Idempotency-Key", "already used for a different request; "
                                     "send a new key for a new request")])
        self.key = key


class Job(Record):
    """The full record of a training job."""

    task_id: str = Field(default_factory=new_task_id)
    tenant_id: str
    spec: JobSpec
    status: JobStatus = JobStatus.QUEUED
    version: int = 0  # bumped by every stored change; stores compare-and-set on it
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress = Progress()
    metrics: dict[str, float] = Field(default_factory=dict)
    # One row per finished epoch, across all attempts (orchestrator/domain/epochs.py): the training curves.
    epochs: list[EpochRow] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    lease: Lease | None = None
    recoveries: int = 0
    error: JobError | None = None
    cost: CostSummary = CostSummary()
    artifacts: Artifacts = Artifacts()
    origin: Origin = Origin()
    cancel: CancelRequest | None = None
    retry_of: str | None = None
    # A Retry of a job stopped by its cost cap or a budget continues from that job's last.pt (its task id).
    resume_from: str | None = None
    # The batch it runs with after running out of memory (orchestrator/domain/oom.py): the spec stays as submitted.
    batch_override: int | None = None
    # A retry's place in its chain (v1 -> v2 -> v3) and what it changed (orchestrator/domain/lineage.py).
    lineage: Lineage | None = None
    # A budget ran out while it ran: the worker stops it at its next checkpoint (orchestrator/domain/cost_cap.py).
    budget_stop: CancelRequest | None = None
    idempotency_key: str | None = None
    idempotency_hash: str | None = None  # what the key was first used for (request_hash); stores set it
    estimate: Estimate | None = None  # set at submit (orchestrator/estimates.py)
    approval: Approval | None = None  # set when a budget held it at submit (awaiting_approval)
    dataset_images: int | None = None  # training images in its dataset, once known (submit or worker)
    # Front-end state of jobs stored before the Slack ledger got its own record (bot/threads:
    # ``slack_threads``): kept readable for them, written by nothing any more. The core never reads it.
    notify: dict[str, Any] = Field(default_factory=dict)

    def request_hash(self) -> str:
        """What an idempotency key is bound to: the validated spec, the job it retries and where it
        reports (team, channel), as canonical JSON. Not who clicked, nor when, nor the thread: a
        repeated delivery or a second click on one card is the same request."""
        # A spec without a cost cap hashes as it did before max_cost_usd existed (keys stored earlier still match).
        spec = self.spec.model_dump(mode="json", exclude={"max_cost_usd"} if self.spec.max_cost_usd is None else None)
        body = {"spec": spec, "retry_of": self.retry_of,
                "origin": self.origin.model_dump(mode="json", include={"team", "channel"})}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def replayed_by(self, request: Job) -> Job:
        """This stored job, as the answer to ``request`` arriving with its idempotency key;
        IdempotencyKeyReused when the key was first used for a different request."""
        if (self.idempotency_hash or self.request_hash()) != request.request_hash():
            raise IdempotencyKeyReused(request.idempotency_key or "")
        return self

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def batch_size(self) -> int:
        """The batch its next execution trains with: the spec's, or smaller after running out of memory."""
        return self.batch_override or self.spec.training_params.batch_size

    def status_view(self) -> dict[str, Any]:
        """The seed's GET /status response format, plus attempts, metrics, cost."""
        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "custom_name": self.spec.custom_name,
            "progress": {
                "epoch": self.progress.epoch,
                "total_epochs": self.progress.total_epochs,
                "progress_percent": self.progress.progress_percent,
                "message": self.progress.message,
                "batch": self.progress.batch,
                "batches": self.progress.batches,
                "loss": self.progress.loss,
                "eta_seconds": self.progress.eta_seconds,
            },
            "metrics": self.metrics,
            "attempts": [
                {
                    "number": a.number,
                    "started": a.started_at or a.claimed_at,
                    "ended": a.ended_at,
                    "why": a.end_reason.value if a.end_reason else None,
                    "detail": a.detail,
                    "start_epoch": a.start_epoch,
                    "end_epoch": a.end_epoch,
                    "batch_size": a.batch_size,
                }
                for a in self.attempts
            ],
            "error": self.error.model_dump() if self.error else None,
            "cost": self.cost.model_dump(),
            "artifacts": self.artifacts.model_dump(),
            "batch_size": self.batch_size,
            "retry_of": self.retry_of,
            "resume_from": self.resume_from,
            "lineage": self.lineage.model_dump() if self.lineage else None,
            "cancel": self.cancel.model_dump() if self.cancel else None,
            "estimate": self.estimate.model_dump() if self.estimate else None,
            "approval": self.approval.model_dump() if self.approval else None,
        }

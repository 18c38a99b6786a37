"""Request and response models of the REST API (they shape the OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.domain.epochs import EpochRow
from orchestrator.domain.spec import JobSpec


class OrchestrateRequest(JobSpec):
    """The seed's request body; tenant_id defaults to the token's tenant."""

    tenant_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


class EstimateView(BaseModel):
    """What the job should bill, worked out at submit (orchestrator/domain/estimate.py)."""

    seconds: float = Field(description="predicted billed seconds of the whole job (cost.billed_seconds at the end)")
    usd: float
    low_usd: float
    high_usd: float
    basis: str = Field(description="history | history_dataset | prior | guess")
    samples: int = Field(0, description="similar completed runs it was learned from (0 for a prior)")
    gpu_type: str = Field(description="the hardware it is priced as")
    images: int | None = Field(None, description="the dataset's training images it assumed")


class BudgetCrossingView(BaseModel):
    scope: str = Field(description="tenant | channel | user")
    key: str
    limit_usd: float
    period: str = Field(description="week | month (UTC calendar periods)")
    spent_usd: float = Field(description="the period's actual cost plus the estimates of jobs still to run")
    estimate_usd: float = Field(description="what this job would add")


class ApprovalView(BaseModel):
    """Why a job waits for an admin (status awaiting_approval), and what was decided."""

    budgets: list[BudgetCrossingView] = Field(description="the budgets its estimate would cross")
    requested_at: datetime
    decision: str | None = Field(None, description="approved | rejected, once decided")
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = Field(None, description="a rejection's reason")


class SubmitResponse(BaseModel):
    task_id: str
    status: str
    created_at: datetime
    custom_name: str | None = None
    retry_of: str | None = None
    status_url: str
    estimate: EstimateView | None = None
    approval: ApprovalView | None = Field(None, description="set when a budget holds it (awaiting_approval)")


class ProgressView(BaseModel):
    epoch: int
    total_epochs: int
    progress_percent: float
    message: str
    batch: int | None = None
    batches: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None


class AttemptView(BaseModel):
    number: int
    started: datetime
    ended: datetime | None
    why: str | None
    detail: str | None
    start_epoch: int
    end_epoch: int | None
    batch_size: int | None = Field(None, description="the batch it trained with (halved after running out of memory)")


class WaitingForView(BaseModel):
    reason: str = Field(description="starting | slots | tenant_cap | awaiting_approval (more may be added)")
    text: str = Field(description="the same in words, e.g. 'all 2 slots busy, 3 jobs ahead'")


class QueueView(BaseModel):
    position: int | None = Field(description="1 = the next job to start; the dispatcher's fair-share order; "
                                 "null while awaiting approval (held outside the line)")
    at_least: bool = Field(False, description="a long queue was read only in part: position is a lower bound")
    waiting_for: WaitingForView


class EtaView(BaseModel):
    seconds: float = Field(description="left, from the worker's observed seconds per epoch")
    finishes_at: datetime


class StatusResponse(BaseModel):
    """The seed's status format, plus attempts, metrics, error, cost and artifacts."""

    task_id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    custom_name: str | None
    progress: ProgressView
    metrics: dict[str, float]
    attempts: list[AttemptView]
    error: dict[str, Any] | None
    cost: dict[str, Any]
    artifacts: dict[str, Any]
    retry_of: str | None
    batch_size: int | None = Field(None, description="the batch it trains with: training_params.batch_size, or half "
                                   "of it per out-of-memory retry (OOM_RETRIES)")
    resume_from: str | None = Field(None, description="a Retry of a job stopped for its cost: the job whose "
                                    "checkpoint it continues from")
    lineage: dict[str, Any] | None = Field(None, description="a retry's place in its chain: {number, changes: "
                                           "[{field, before, after}], earlier: [{task_id, number, changes}]}")
    cancel: dict[str, Any] | None = Field(None, description="who stopped it and when: {by, at, detail}; by "
                                          "'budget' for its max_cost_usd or a budget, with the words in detail")
    estimate: EstimateView | None = Field(None, description="the estimate made at submit")
    queue: QueueView | None = Field(None, description="while queued: its place in line and why it waits")
    approval: ApprovalView | None = Field(None, description="set when a budget held it at submit")
    eta: EtaView | None = Field(None, description="while running: when it should finish")
    epochs: list[EpochRow] | None = Field(None, description="GET /status and /jobs/{id} only: one row per "
                                          "finished epoch, across all attempts (the curves of /jobs/{id}/plot.png)")


class JobList(BaseModel):
    jobs: list[StatusResponse]


class CancelResponse(BaseModel):
    task_id: str
    status: str
    changed: bool


class DecisionRequest(BaseModel):
    """Optional body of POST /jobs/{id}/approve and /reject."""

    reason: str | None = Field(None, max_length=500, description="why (shown in the job's thread and status)")


class BudgetView(BaseModel):
    scope: str = Field(description="tenant | channel | user")
    key: str
    usd: float
    period: str = Field(description="week | month")
    spent_usd: float = Field(description="this period: actual cost plus estimates of jobs still to run")
    left_usd: float
    period_start: datetime
    period_end: datetime
    source: str = Field(description="settings (BUDGETS) | stored (set at run time, overrides settings)")


class BudgetList(BaseModel):
    budgets: list[BudgetView]


class BudgetRequest(BaseModel):
    """PUT /budgets: set one budget (``usd`` null removes the stored one)."""

    scope: str = Field(description="tenant | channel | user")
    key: str = Field(min_length=1, max_length=128)
    usd: float | None = Field(None, description="USD per period; null removes the stored budget")
    period: str = Field("month", description="week | month")


class LogsResponse(BaseModel):
    task_id: str
    lines: list[str]


class ModelView(BaseModel):
    name: str
    version: int
    task_id: str
    architecture: str
    checkpoint: str
    metrics: dict[str, float]
    created_at: datetime
    aliases: list[str] = Field(default_factory=list, description="aliases pointing at this version, e.g. production")
    source: str | None = None
    submitted_by: str | None = None


class AliasView(BaseModel):
    name: str
    alias: str
    version: int
    set_by: str
    set_at: datetime
    previous: int | None = None


class ModelList(BaseModel):
    models: list[ModelView]
    aliases: list[AliasView] = Field(default_factory=list, description="where each alias of these names points")


class PromoteResponse(BaseModel):
    alias: AliasView
    changed: bool = Field(description="false: the alias already pointed at this version; nothing changed")
    model: ModelView


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str
    detail: list[FieldProblem] | str | None = None

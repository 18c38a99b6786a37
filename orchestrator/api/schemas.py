"""Request and response models of the REST API (they shape the OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.domain.spec import JobSpec


class OrchestrateRequest(JobSpec):
    """The seed's request body; tenant_id defaults to the token's tenant."""

    tenant_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


class SubmitResponse(BaseModel):
    task_id: str
    status: str
    created_at: datetime
    custom_name: str | None = None
    retry_of: str | None = None
    status_url: str


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


class JobList(BaseModel):
    jobs: list[StatusResponse]


class CancelResponse(BaseModel):
    task_id: str
    status: str
    changed: bool


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


class ModelList(BaseModel):
    models: list[ModelView]


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str
    detail: list[FieldProblem] | str | None = None

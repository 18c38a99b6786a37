"""REST routes: the seed's POST /orchestrate and GET /status, plus jobs and health (models: model_routes.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.api.auth import require_tenant
from orchestrator.api.schemas import (
    CancelResponse,
    ErrorResponse,
    JobList,
    LogsResponse,
    OrchestrateRequest,
    StatusResponse,
    SubmitResponse,
)
from orchestrator.domain.job import Job, Origin
from orchestrator.domain.errors import parse_spec
from orchestrator.domain.status import JobStatus
from orchestrator.queue_view import live_views
from orchestrator.service import JobService

router = APIRouter()
Tenant = Annotated[str, Depends(require_tenant)]
TaskId = Annotated[str, Query(min_length=1, max_length=64, description="the job's task_id")]
ERRORS = {401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}
QUEUE_FULL = {"model": ErrorResponse, "description": "MAX_QUEUED_PER_TENANT of your jobs are queued; nothing stored"}


def service(request: Request) -> JobService:
    return request.app.state.runtime.jobs


def _submitted(request: Request, job: Job) -> SubmitResponse:
    return SubmitResponse(task_id=job.task_id, status=job.status.value, created_at=job.created_at,
                          custom_name=job.spec.custom_name, retry_of=job.retry_of,
                          status_url=str(request.url_for("get_status").include_query_params(task_id=job.task_id)),
                          estimate=job.estimate.model_dump() if job.estimate else None,
                          approval=job.approval.model_dump() if job.approval else None)


@router.post("/orchestrate", status_code=202, response_model=SubmitResponse,
             responses={**ERRORS, 200: {"model": SubmitResponse, "description": "idempotent replay"},
                        403: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 429: QUEUE_FULL,
                        503: {"model": ErrorResponse, "description": "storage busy or down; nothing stored"}})
def orchestrate(body: OrchestrateRequest, request: Request, response: Response, tenant: Tenant,
                idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                x_laxai_client: Annotated[str | None, Header(max_length=20)] = None) -> SubmitResponse:
    """Submit a training job (the seed's body). Returns at once; poll GET /status.

    With ``Idempotency-Key``, the same key and body again returns the first job (200); the same
    key with another body is 422 ``idempotency_key_reused``."""
    if body.tenant_id is not None and body.tenant_id != tenant:
        raise HTTPException(403, "tenant_id does not match the tenant of your API token")
    spec = parse_spec({**body.model_dump(exclude_unset=True), "tenant_id": tenant})
    origin = Origin(source="cli" if x_laxai_client == "cli" else "api")
    key = idempotency_key.strip() if idempotency_key else None
    job, created = service(request).submit(spec, origin, idempotency_key=key or None)
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return _submitted(request, job)


@router.get("/status", name="get_status", response_model=StatusResponse, responses=ERRORS)
def get_status(task_id: TaskId, request: Request, tenant: Tenant) -> dict:
    """One job in the seed's status format, with ``queue`` (queued) and ``eta`` (running)."""
    return _live(request, service(request).get(tenant, task_id))


@router.get("/jobs", response_model=JobList, responses=ERRORS)
def list_jobs(request: Request, tenant: Tenant,
              status: Annotated[list[JobStatus] | None, Query(description="filter; repeat for several")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    """Your jobs, newest first."""
    jobs = service(request).list(tenant, statuses=status, limit=limit)
    return {"jobs": live_views(jobs, service(request).store, service(request).settings)}


@router.get("/jobs/{task_id}", response_model=StatusResponse, responses=ERRORS)
def get_job(task_id: str, request: Request, tenant: Tenant) -> dict:
    return _live(request, service(request).get(tenant, task_id))


def _live(request: Request, job: Job) -> dict:
    """The job's status view with its live parts: place in the queue, ETA (orchestrator/queue_view.py);
    and its epoch rows (the curves' data: one job's only, a list of jobs would grow too large)."""
    jobs = service(request)
    return {**live_views([job], jobs.store, jobs.settings)[0], "epochs": [row.model_dump() for row in job.epochs]}


@router.post("/jobs/{task_id}/cancel", response_model=CancelResponse, responses=ERRORS)
def cancel_job(task_id: str, request: Request, tenant: Tenant) -> CancelResponse:
    """Cancel a queued job at once, or ask a running one to stop (it keeps its checkpoint)."""
    job, changed = service(request).cancel(tenant, task_id, by=f"api:{tenant}")
    return CancelResponse(task_id=job.task_id, status=job.status.value, changed=changed)


@router.post("/jobs/{task_id}/retry", status_code=202, response_model=SubmitResponse,
             responses={**ERRORS, 409: {"model": ErrorResponse}, 429: QUEUE_FULL})
def retry_job(task_id: str, request: Request, tenant: Tenant,
              idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> SubmitResponse:
    """A new job with the same spec as a finished one, linked to it."""
    key = idempotency_key.strip() if idempotency_key else None
    job = service(request).retry(tenant, task_id, Origin(source="api"), idempotency_key=key or None)
    return _submitted(request, job)


@router.get("/jobs/{task_id}/logs", response_model=LogsResponse, responses=ERRORS)
def job_logs(task_id: str, request: Request, tenant: Tenant,
             tail: Annotated[int, Query(ge=1, le=5000)] = 200) -> LogsResponse:
    """The last lines of the worker's output (local backend)."""
    return LogsResponse(task_id=task_id, lines=service(request).logs(tenant, task_id, tail))


@router.get("/healthz", responses={503: {"description": "a background loop is not recovering; named in problems"}})
def healthz(request: Request) -> Response:
    """Liveness, without auth: 503 naming the background loops that are not recovering (a dead
    dispatcher thread, a loop failing pass after pass), so the platform restarts the service."""
    runtime = request.app.state.runtime
    problems = runtime.problems()
    if problems:
        return JSONResponse({"status": "unhealthy", "backend": runtime.backend.name, "problems": problems},
                            status_code=503)
    return JSONResponse({"status": "ok", "backend": runtime.backend.name})



"""REST for a job's training curves: ``GET /jobs/{task_id}/plot.png`` (orchestrator/curves.py).

Tenant-scoped like ``GET /jobs/{task_id}``: another tenant's job is 404. A job with no finished
epoch yet is 409, saying so. The PNG is drawn on each request from the job's epoch rows (a
fraction of a second; FastAPI runs this sync handler on its thread pool, off the event loop).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from orchestrator.api.auth import require_tenant
from orchestrator.api.schemas import ErrorResponse
from orchestrator.curves import NoEpochs, job_png

router = APIRouter()
Tenant = Annotated[str, Depends(require_tenant)]


@router.get("/jobs/{task_id}/plot.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "the training curves"},
                       401: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
                       409: {"model": ErrorResponse, "description": "no epoch has finished yet"}})
def job_plot(task_id: str, request: Request, tenant: Tenant) -> Response:
    """The job's training curves as a PNG: losses and mAP per epoch across all its executions,
    continuations and resumes marked."""
    job = request.app.state.runtime.jobs.get(tenant, task_id)
    try:
        png = job_png(job)
    except NoEpochs:
        raise HTTPException(409, f"job {task_id} has no finished epoch yet: no curves to draw") from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

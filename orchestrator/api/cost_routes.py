"""REST for spend reports: ``GET /costs?period=week|month`` (orchestrator/spend_reports.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from orchestrator.api.auth import require_tenant
from orchestrator.api.schemas import ErrorResponse
from orchestrator.domain.spend import SpendReport
from orchestrator.spend_reports import spend_report

router = APIRouter()
Tenant = Annotated[str, Depends(require_tenant)]


@router.get("/costs", response_model=SpendReport,
            responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}})
def get_costs(request: Request, tenant: Tenant,
              period: Annotated[str, Query(max_length=16, description="week or month (UTC calendar)")] = "month",
              ) -> SpendReport:
    """Your tenant's spend this week or month: totals by user, channel, architecture and GPU type, with
    the budgets that apply and what is left of them."""
    jobs = request.app.state.runtime.jobs
    return spend_report(jobs.store, getattr(jobs, "spending", None), tenant, period)

"""REST for budgets and approval: approve or reject a job held by a budget, read and set budgets.

Approving, rejecting and setting need an admin's token (``LAXAI_API_TOKENS`` entry ``token:tenant:admin``);
anyone else gets 403 and nothing changes. An admin acts for its own tenant: another tenant's job is 404,
and a tenant budget may be set for its own tenant only (channel and user budgets belong to the
deployment's Slack workspace).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import ValidationError

from orchestrator.api.auth import Caller, require_caller
from orchestrator.api.schemas import BudgetList, BudgetRequest, DecisionRequest, ErrorResponse, StatusResponse
from orchestrator.domain.budget import PERIODS, SCOPES, Budget
from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.queue_view import live_views
from orchestrator.service import JobService

router = APIRouter()
Who = Annotated[Caller, Depends(require_caller)]
ADMIN_ONLY = {"model": ErrorResponse, "description": "your token is not an admin's (token:tenant:admin)"}
ERRORS = {401: {"model": ErrorResponse}, 403: ADMIN_ONLY, 404: {"model": ErrorResponse},
          409: {"model": ErrorResponse, "description": "the job is not awaiting approval"},
          422: {"model": ErrorResponse}}


def service(request: Request) -> JobService:
    return request.app.state.runtime.jobs


def _view(request: Request, job) -> dict:
    jobs = service(request)
    return live_views([job], jobs.store, jobs.settings)[0]


@router.post("/jobs/{task_id}/approve", response_model=StatusResponse, responses=ERRORS)
def approve_job(task_id: str, request: Request, caller: Who) -> dict:
    """Let a job held by a budget run (awaiting_approval -> queued). Admin tokens only."""
    job = service(request).approve(caller.tenant, task_id, by=f"api:{caller.tenant}", admin=caller.admin)
    return _view(request, job)


@router.post("/jobs/{task_id}/reject", response_model=StatusResponse, responses=ERRORS)
def reject_job(task_id: str, request: Request, caller: Who,
               body: Annotated[DecisionRequest | None, Body()] = None) -> dict:
    """Refuse a job held by a budget: it ends cancelled with the reason. Admin tokens only."""
    reason = body.reason if body else None
    job = service(request).reject(caller.tenant, task_id, by=f"api:{caller.tenant}", admin=caller.admin,
                                  reason=reason)
    return _view(request, job)


def _standing(request: Request, tenant: str) -> dict:
    return {"budgets": [s.to_dict() for s in service(request).spending.standing(tenant)]}


@router.get("/budgets", response_model=BudgetList, responses={401: {"model": ErrorResponse}})
def list_budgets(request: Request, caller: Who) -> dict:
    """The budgets your jobs are held to, with this period's spend and what is left."""
    return _standing(request, caller.tenant)


def _parse(body: BudgetRequest, caller: Caller) -> Budget | None:
    """The budget to store (None: remove), or a 422 naming the field."""
    if body.scope not in SCOPES:
        raise SpecError([FieldError("scope", f"must be one of {', '.join(SCOPES)} (got {body.scope!r})")])
    if body.period not in PERIODS:
        raise SpecError([FieldError("period", f"must be one of {', '.join(PERIODS)} (got {body.period!r})")])
    if body.scope == "tenant" and body.key != caller.tenant:
        raise HTTPException(403, "an admin may set the tenant budget of its own tenant only")
    if body.usd is None:
        return None
    try:
        return Budget(scope=body.scope, key=body.key, usd=body.usd, period=body.period)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SpecError([FieldError(str(first["loc"][0]), first["msg"])]) from None


@router.put("/budgets", response_model=BudgetList, responses={**ERRORS})
def put_budget(body: BudgetRequest, request: Request, caller: Who) -> dict:
    """Set one budget (``usd`` null removes the stored one; BUDGETS' entry, if any, applies again).
    Stored and audited (who, when, old, new); it overrides BUDGETS for its scope and key."""
    if not caller.admin:
        raise HTTPException(403, "only an admin's token (token:tenant:admin) may set budgets")
    budget = _parse(body, caller)
    spending = service(request).spending
    by = f"api:{caller.tenant}"
    if budget is None:
        spending.remove(body.scope, body.key, by)
    else:
        spending.set(budget, by)
    return _standing(request, caller.tenant)

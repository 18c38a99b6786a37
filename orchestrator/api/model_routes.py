"""REST for the model registry: list versions with their aliases, and promote one.

``GET /models?name=`` lists the tenant's versions newest first, each with the aliases pointing at it.
``POST /models/{name}/versions/{version}/promote`` (``?alias=``, default ``production``) points the
alias at that version (orchestrator/model_service.py): an admin's token, or any token of the tenant
for a version its API or CLI submitted; a version a Slack user trained needs an admin (403, nothing
changes). Another tenant's model, or a version that does not exist, is 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from orchestrator.api.auth import Caller, require_caller
from orchestrator.api.schemas import ErrorResponse, ModelList, PromoteResponse
from orchestrator.domain.model_versions import PRODUCTION, parse_version
from orchestrator.model_service import Listing, ModelService, UnknownModel, api_identity
from orchestrator.registry.base import ModelAlias, ModelEntry

router = APIRouter()
Who = Annotated[Caller, Depends(require_caller)]
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse, "description": "neither an admin's token "
                                                "nor the version's submitter; nothing changed"},
          404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}


def models(request: Request) -> ModelService:
    return ModelService(request.app.state.runtime.jobs)


def _entry(entry: ModelEntry, aliases: list[str]) -> dict:
    return {**entry.model_dump(include={"name", "version", "task_id", "architecture", "checkpoint", "metrics",
                                        "created_at", "source", "submitted_by"}), "aliases": aliases}


def _alias(alias: ModelAlias) -> dict:
    return alias.model_dump(include={"name", "alias", "version", "set_by", "set_at", "previous"})


def _listing(listing: Listing) -> dict:
    return {"models": [_entry(e, listing.aliases_of(e)) for e in listing.entries],
            "aliases": [_alias(a) for a in listing.aliases]}


@router.get("/models", response_model=ModelList, responses=ERRORS)
def list_models(request: Request, caller: Who,
                name: Annotated[str | None, Query(max_length=100, description="only this model name")] = None) -> dict:
    """Registered model versions, newest first, each with its aliases (``production``…)."""
    return _listing(models(request).listing(caller.tenant, name))


@router.post("/models/{name:path}/versions/{version}/promote", response_model=PromoteResponse, responses=ERRORS)
def promote_model(name: str, version: str, request: Request, caller: Who,
                  alias: Annotated[str, Query(max_length=40, description="the alias to set")] = PRODUCTION) -> dict:
    """Point ``alias`` (default ``production``) at this version, recording who and when. For an admin's
    token, or the tenant's tokens when the API or CLI submitted that version's job."""
    number = parse_version(version)  # 3 or v3; anything else is 422 naming "version"
    service = models(request)
    try:
        done = service.promote(caller.tenant, name, number, by=api_identity(caller.tenant), admin=caller.admin,
                               alias=alias)
    except UnknownModel as exc:
        raise HTTPException(404, str(exc)) from None
    pointing = [a.alias for a in service.registry.aliases(caller.tenant, name) if a.version == number]
    return {"alias": _alias(done.alias), "changed": done.changed, "model": _entry(done.entry, pointing)}

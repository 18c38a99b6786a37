"""Bearer-token auth: each token is bound to one tenant (LAXAI_API_TOKENS); ``token:tenant:admin`` entries
are admins' (approve or reject jobs held by a budget, set budgets)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="LAXAI_API_TOKENS token (printed by `laxai serve` locally)")


def tenant_for(tokens: dict[str, str], presented: str) -> str | None:
    """The tenant of a token, comparing in constant time."""
    found = None
    for token, tenant in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = tenant
    return found


@dataclass(frozen=True)
class Caller:
    """Who called: the token's tenant, and whether the token is an admin's."""

    tenant: str
    admin: bool


def is_admin(admins: frozenset[str], presented: str) -> bool:
    """Whether the token is an admin's, comparing in constant time."""
    found = False
    for token in admins:
        found |= hmac.compare_digest(token.encode(), presented.encode())
    return found


def require_caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
    """The caller's tenant and admin flag, or 401."""
    tenant = require_tenant(request, credentials)
    settings = request.app.state.runtime.settings
    return Caller(tenant=tenant, admin=is_admin(settings.admin_tokens, credentials.credentials))


def require_tenant(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
    """The caller's tenant, or 401."""
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="missing or invalid token: send 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise unauthorized
    tenant = tenant_for(request.app.state.runtime.settings.api_tokens, credentials.credentials)
    if tenant is None:
        raise unauthorized
    return tenant

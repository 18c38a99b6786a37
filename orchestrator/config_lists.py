"""Comma-separated settings, parsed and checked once, when Settings load.

Each parser takes the raw value (text from the environment or the env file, or an
already-split list from code) and returns the parsed form, or raises ValueError
naming the variable and what is allowed, so a bad value stops the process at start
(``laxai serve`` exits 2 naming it) instead of failing the first request that reads
it. Nothing here echoes a secret: a bad API-token entry is named by its position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, SecretStr
from pydantic_settings import NoDecode

from orchestrator.domain.budget import Budget, parse_budgets
from orchestrator.domain.spec import LIMITS

# A comma-separated list setting; NoDecode keeps pydantic-settings from reading it as JSON first,
# so its field validator sees the raw text.
CommaList = Annotated[tuple[str, ...], NoDecode]
# JobSpec.tenant_id's rule: a token's tenant becomes every job's tenant_id.
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]*")


def split_commas(raw: object) -> list[str]:
    """``"a, b,,c"`` (or a list) -> ``["a", "b", "c"]``; blank items dropped."""
    if raw is None:
        return []
    if isinstance(raw, SecretStr):
        raw = raw.get_secret_value()
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, Iterable):
        return [str(part).strip() for part in raw if str(part).strip()]
    raise ValueError(f"expected comma-separated text, got {type(raw).__name__}")


class ApiToken(BaseModel):
    """One LAXAI_API_TOKENS entry: a bearer token, the tenant it acts for, and whether it is an admin's
    (``token:tenant:admin``: it may approve or reject jobs held by a budget, and set budgets)."""

    model_config = ConfigDict(frozen=True)

    token: SecretStr
    tenant: str
    admin: bool = False


ADMIN_SUFFIX = ":admin"


def _token_problem(token: str, colon: str, tenant: str, seen: set[str]) -> str | None:
    if not colon or not token or not tenant:
        return "is not token:tenant"
    if len(tenant) > LIMITS["tenant_id"] or not TENANT_ID.fullmatch(tenant):
        return (f"has a tenant that is not a tenant id (letters, digits and _ . : @ -, starting with a "
                f"letter or digit, at most {LIMITS['tenant_id']} characters)")
    if token in seen:
        return "repeats an earlier token"
    return None


def parse_api_tokens(raw: object) -> tuple[ApiToken, ...] | None:
    """``"token1:tenant-a,token2:tenant-b:admin"`` -> the entries; blank -> None (a local token is used).
    A trailing ``:admin`` marks an admin's token (so a tenant id cannot end in ``:admin``)."""
    if isinstance(raw, Mapping):
        raw = [f"{token}:{tenant}" for token, tenant in raw.items()]
    elif isinstance(raw, tuple) and all(isinstance(item, ApiToken) for item in raw):
        return raw or None
    entries = split_commas(raw)
    parsed, seen, problems = [], set(), []
    for number, entry in enumerate(entries, 1):
        token, colon, tenant = (part.strip() for part in entry.partition(":"))
        admin = tenant.endswith(ADMIN_SUFFIX)
        tenant = tenant.removesuffix(ADMIN_SUFFIX).strip() if admin else tenant
        problem = _token_problem(token, colon, tenant, seen)
        if problem:
            problems.append(f"entry {number} {problem}")
            continue
        seen.add(token)
        parsed.append(ApiToken(token=SecretStr(token), tenant=tenant, admin=admin))
    if problems:
        raise ValueError(f"LAXAI_API_TOKENS must look like token1:tenant-a,token2:tenant-b:admin: "
                         f"{'; '.join(problems)} (of {len(entries)})")
    return tuple(parsed) or None


def parse_audiences(raw: object, name: str) -> tuple[str, ...] | None:
    """OIDC audiences, comma-separated (usually the endpoint's URL); blank -> None (unset)."""
    items = split_commas(raw)
    bad = [item for item in items if any(char.isspace() or char in "\"'" for char in item)]
    if bad:
        raise ValueError(f"{name} takes comma-separated audiences such as https://SERVICE/pubsub/push, "
                         f"without spaces or quotes inside one (got {bad[0]!r}; a missing comma?)")
    return tuple(items) or None


def parse_budgets_setting(raw: object) -> tuple[Budget, ...]:
    """BUDGETS: ``"tenant:T=500/month,channel:C0123=50/month,user:U0456=20/week"`` (USD) -> the budgets."""
    if isinstance(raw, tuple) and all(isinstance(item, Budget) for item in raw):
        return raw
    try:
        return parse_budgets(split_commas(raw))
    except ValueError as exc:
        raise ValueError(f"BUDGETS must look like tenant:T=500/month,channel:C0123=50/month,user:U0456=20/week "
                         f"(USD; scopes tenant, channel, user; periods week, month): {exc}") from None

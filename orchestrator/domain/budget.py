"""Spending budgets and the rule that holds a job for approval. Pure domain code.

A budget caps what one scope may spend in one calendar period, in USD:

    tenant:T=500/month      every job of tenant T (job.tenant_id)
    channel:C0123=50/month  jobs submitted from Slack channel C0123 (job.origin.channel)
    user:U0456=20/week      jobs submitted by user U0456 (job.origin.user)

Periods are UTC calendar windows: a month from the 1st 00:00 UTC, an ISO week from Monday
00:00 UTC. A job counts in the period it was submitted in (``created_at``): that is what the
store can find with a bounded query, and a job's whole cost then lands in one period.

The rule (``crossings``): a budget's spend is the actual cost of the period's jobs plus what the
jobs still to run are expected to add (``committed_usd``: the estimate less the cost so far, for
running, cancelling and queued jobs, approved ones included). A new job whose estimate would take
that spend over the budget is held in ``awaiting_approval`` until an admin decides; held jobs do not
count, so one held job never holds the next. Approval is the admin's word: it is not re-checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.job import BudgetCrossing, Job
from orchestrator.domain.status import JobStatus

Scope = Literal["tenant", "channel", "user"]
Period = Literal["week", "month"]
SCOPES: tuple[str, ...] = ("tenant", "channel", "user")
PERIODS: tuple[str, ...] = ("week", "month")
MAX_USD = 10_000_000.0
# A key is a tenant id, a Slack channel id or a Slack user id: no separators of the BUDGETS syntax.
KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
ENTRY = re.compile(r"^(?P<scope>[a-z]+):(?P<key>.+)=\$?(?P<usd>[0-9.]+)/(?P<period>[a-z]+)$")
ALLOWED = "scope:key=USD/period, scope tenant, channel or user, period week or month (e.g. channel:C0123=50/month)"
# Jobs whose estimate still counts: they hold or will take a worker.
PENDING = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING})


class Budget(BaseModel):
    """One budget: at most ``usd`` per ``period`` for the jobs of one scope and key."""

    model_config = ConfigDict(frozen=True)

    scope: Scope
    key: str = Field(min_length=1, max_length=128, pattern=rf"^{KEY.pattern}$")
    usd: float = Field(gt=0, le=MAX_USD)
    period: Period

    @property
    def ident(self) -> tuple[str, str]:
        """What a stored budget replaces: one budget per scope and key."""
        return (self.scope, self.key)

    def text(self) -> str:
        """The BUDGETS form of this entry."""
        return f"{self.scope}:{self.key}={self.usd:g}/{self.period}"


def parse_budget(entry: str) -> Budget:
    """``"channel:C0123=50/month"`` -> Budget; ValueError saying what is allowed."""
    match = ENTRY.match(entry.strip())
    if not match:
        raise ValueError(f"{entry.strip()!r} is not {ALLOWED}")
    scope, key, period = match["scope"], match["key"], match["period"]
    if scope not in SCOPES:
        raise ValueError(f"{entry.strip()!r}: the scope must be tenant, channel or user (got {scope!r})")
    if period not in PERIODS:
        raise ValueError(f"{entry.strip()!r}: the period must be week or month (got {period!r})")
    if not KEY.fullmatch(key):
        raise ValueError(f"{entry.strip()!r}: the key must be an id of letters, digits and _ . : @ - "
                         f"(at most 128 characters)")
    try:
        usd = float(match["usd"])
    except ValueError:
        raise ValueError(f"{entry.strip()!r}: the amount must be a number of USD") from None
    if not 0 < usd <= MAX_USD:
        raise ValueError(f"{entry.strip()!r}: the amount must be more than 0 and at most {MAX_USD:,.0f} USD")
    return Budget(scope=scope, key=key, usd=usd, period=period)  # type: ignore[arg-type]


def parse_budgets(entries: Iterable[str]) -> tuple[Budget, ...]:
    """Every entry parsed; one budget per scope and key (a repeat is refused, not silently replaced)."""
    parsed: dict[tuple[str, str], Budget] = {}
    for entry in entries:
        budget = parse_budget(entry)
        if budget.ident in parsed:
            raise ValueError(f"{budget.scope}:{budget.key} is given twice; one budget per scope and key")
        parsed[budget.ident] = budget
    return tuple(parsed.values())


def merged(base: Iterable[Budget], stored: Iterable[Budget]) -> list[Budget]:
    """The budgets in force: the settings' base, each (scope, key) overridden by a stored entry."""
    table = {budget.ident: budget for budget in base}
    table.update({budget.ident: budget for budget in stored})
    return sorted(table.values(), key=lambda b: (SCOPES.index(b.scope), b.key))


def window(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar period holding ``now``: [start, end)."""
    now = now.astimezone(timezone.utc)
    if period == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=32)).replace(day=1)
        return start, end
    if period == "week":
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        start = day - timedelta(days=now.weekday())  # ISO weeks begin on Monday
        return start, start + timedelta(days=7)
    raise ValueError(f"period must be week or month (got {period!r})")


def scope_key(job: Job, scope: str) -> str | None:
    """What a budget of ``scope`` matches on this job (None: the job has no such key, e.g. a REST job's channel)."""
    return {"tenant": job.tenant_id, "channel": job.origin.channel, "user": job.origin.user}[scope]


def applies(budget: Budget, job: Job) -> bool:
    return scope_key(job, budget.scope) == budget.key


def committed_usd(job: Job) -> float:
    """What a job counts against its budgets: its cost so far, plus the rest of its estimate while it may
    still run. A held or finished job counts its actual cost only."""
    spent = job.cost.usd
    if job.status in PENDING and job.estimate is not None:
        return max(spent, job.estimate.usd)
    return spent


def spent(budget: Budget, jobs: Iterable[Job], now: datetime, exclude: str | None = None) -> float:
    """The budget's spend in the period holding ``now`` over ``jobs`` (any superset of the period's)."""
    start, end = window(budget.period, now)
    return round(sum(committed_usd(job) for job in jobs
                     if job.task_id != exclude and applies(budget, job) and start <= job.created_at < end), 6)


def crossings(job: Job, budgets: Iterable[Budget], jobs: Iterable[Job], now: datetime) -> list[BudgetCrossing]:
    """The budgets ``job``'s estimate would take over; empty: it may run. A job without an estimate
    crosses nothing (there is nothing to add up)."""
    if job.estimate is None:
        return []
    jobs = list(jobs)
    found = []
    for budget in budgets:
        if not applies(budget, job):
            continue
        so_far = spent(budget, jobs, now, exclude=job.task_id)
        if so_far + job.estimate.usd > budget.usd:
            found.append(BudgetCrossing(scope=budget.scope, key=budget.key, limit_usd=budget.usd,
                                        period=budget.period, spent_usd=so_far, estimate_usd=job.estimate.usd))
    return found


def left(budget: Budget, jobs: Iterable[Job], now: datetime) -> float:
    """What the budget still allows in the current period (never below 0)."""
    return max(0.0, round(budget.usd - spent(budget, jobs, now), 6))


def earliest_start(budgets: Iterable[Budget], now: datetime) -> datetime:
    """The earliest period start among ``budgets`` (where a spend query has to begin)."""
    starts = [window(budget.period, now)[0] for budget in budgets]
    return min(starts) if starts else now


def describe(crossing: BudgetCrossing | Mapping[str, object]) -> str:
    """One line a person reads: "channel C0123's $50/month budget: $48.20 spent + $3.10 estimated"."""
    c = crossing if isinstance(crossing, BudgetCrossing) else BudgetCrossing.model_validate(crossing)
    return (f"{c.scope} {c.key}'s ${c.limit_usd:,.2f}/{c.period} budget: ${c.spent_usd:,.2f} spent "
            f"+ ${c.estimate_usd:,.2f} estimated")

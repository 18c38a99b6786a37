"""Spend reports: where a tenant's money went in a week or a month. Pure domain code.

A report sums the actual cost (``cost.usd``; a running job's up to now, at its rates) of the
tenant's jobs submitted in the period (the UTC calendar window of orchestrator/domain/budget.py,
so a report and a budget count the same jobs), in four breakdowns: by user, by Slack channel, by
architecture and by the GPU type each job was billed as. Jobs that billed nothing (held, queued,
cancelled before they started) are counted in ``jobs`` but add no line. The budgets that apply and
what is left of them come from the service (orchestrator/spending.py) and are passed in as they are.

``actual_usd`` is also the rule a running job's budget stop uses (orchestrator/budget_stops.py):
estimates count when a job is admitted, only money already spent stops a job that runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from orchestrator.domain.job import Job

PERIODS: tuple[str, ...] = ("week", "month")
NO_USER, NO_CHANNEL = "(no user)", "(no channel)"  # REST and CLI jobs have no Slack user or channel


def billed_seconds(job: Job, now: datetime | None = None) -> float:
    """The job's billed seconds: the stored figure, or for a job still running every execution up to ``now``."""
    if not job.status.is_active():
        return job.cost.billed_seconds
    total = 0.0
    for attempt in job.attempts:
        if attempt.started_at is not None:
            end = attempt.ended_at or now or attempt.started_at
            total += max(0.0, (end - attempt.started_at).total_seconds())
    return max(job.cost.billed_seconds, total)


def actual_usd(job: Job, now: datetime | None = None) -> float:
    """What the job has cost so far: stored ``cost.usd``, or for a job still running its billed seconds up to
    ``now`` at its stored rate (the stored figure is as of its last progress write)."""
    if not job.status.is_active() or job.cost.usd_per_second <= 0:
        return job.cost.usd
    return max(job.cost.usd, round(billed_seconds(job, now) * job.cost.usd_per_second, 6))


class SpendLine(BaseModel):
    """One row of a breakdown."""

    model_config = ConfigDict(frozen=True)

    key: str
    usd: float
    jobs: int
    billed_seconds: float


class SpendReport(BaseModel):
    """A tenant's spend in one period, four ways, with the budgets that apply."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    period: str
    start: datetime
    end: datetime
    total_usd: float
    billed_seconds: float
    jobs: int  # jobs submitted in the period (billed or not)
    billed_jobs: int  # of them, those that billed something
    truncated: bool = False  # the store's bounded read hit its limit: the newest jobs only
    by_user: list[SpendLine]
    by_channel: list[SpendLine]
    by_architecture: list[SpendLine]
    by_gpu_type: list[SpendLine]
    budgets: list[dict[str, Any]]  # orchestrator/spending.py BudgetStanding.to_dict(), as given


def breakdown(jobs: Iterable[Job], key: Callable[[Job], str], now: datetime | None = None) -> list[SpendLine]:
    """Lines of the billed ``jobs`` grouped by ``key``, most expensive first (then by key)."""
    totals: dict[str, list[float]] = {}
    for job in jobs:
        usd = actual_usd(job, now)
        row = totals.setdefault(key(job), [0.0, 0, 0.0])
        row[0] += usd
        row[1] += 1
        row[2] += max(0.0, billed_seconds(job, now))
    lines = [SpendLine(key=k, usd=round(v[0], 6), jobs=int(v[1]), billed_seconds=round(v[2], 1))
             for k, v in totals.items()]
    return sorted(lines, key=lambda line: (-line.usd, line.key))


def report(tenant_id: str, period: str, window: tuple[datetime, datetime], jobs: Iterable[Job],
           budgets: list[dict[str, Any]] | None = None, now: datetime | None = None,
           truncated: bool = False) -> SpendReport:
    """The report over ``jobs`` (any superset of the tenant's jobs submitted in ``window``)."""
    if period not in PERIODS:
        raise ValueError(f"period must be week or month (got {period!r})")
    start, end = window
    mine = [j for j in jobs if j.tenant_id == tenant_id and start <= j.created_at < end]
    billed = [j for j in mine if actual_usd(j, now) > 0 or billed_seconds(j, now) > 0]
    return SpendReport(
        tenant_id=tenant_id, period=period, start=start, end=end,
        total_usd=round(sum(actual_usd(j, now) for j in billed), 6),
        billed_seconds=round(sum(billed_seconds(j, now) for j in billed), 1),
        jobs=len(mine), billed_jobs=len(billed), truncated=truncated,
        by_user=breakdown(billed, lambda j: j.origin.user or NO_USER, now),
        by_channel=breakdown(billed, lambda j: j.origin.channel or NO_CHANNEL, now),
        by_architecture=breakdown(billed, lambda j: j.spec.model_params.architecture, now),
        by_gpu_type=breakdown(billed, lambda j: j.cost.gpu_type, now),
        budgets=list(budgets or []),
    )

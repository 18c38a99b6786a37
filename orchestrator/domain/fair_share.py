"""Fair share: the order in which the queued jobs of several tenants take free slots.

Pure domain code: the dispatcher asks the store for each tenant's next queued
jobs and starts them in the order ``fair_order`` gives, while slots are free.

- Within a tenant, its own dispatch order: highest priority first, then oldest.
- Across tenants, round-robin: each round gives every tenant below its cap one
  slot, and within a round the tenant whose next job is best (priority, then age)
  goes first. A tenant's rounds start after the jobs it already runs, so a tenant
  with nothing running is served before one already running a job, whatever the
  priorities: priority orders a tenant's own jobs and breaks ties between tenants,
  it never lets one tenant's backlog hold back another tenant.
- A tenant at ``per_tenant`` running jobs gets nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from orchestrator.domain.job import Job


def dispatch_key(job: Job) -> tuple[int, datetime, str]:
    """A tenant's own order: highest priority first, then oldest (then the id, so ties are stable)."""
    return -job.priority, job.created_at, job.task_id


def fair_order(queued: Mapping[str, Iterable[Job]], running: Mapping[str, int], per_tenant: int) -> list[Job]:
    """The jobs of ``queued`` (tenant -> its queued jobs) that may start, in the order slots go to them.

    ``running`` counts each tenant's jobs that hold a slot now; a tenant gets at most
    ``per_tenant`` minus that many of its jobs in the result (none when at its cap)."""
    ranked: list[tuple[int, tuple[int, datetime, str], Job]] = []
    for tenant, jobs in queued.items():
        holding = running.get(tenant, 0)
        room = max(0, per_tenant - holding)
        for turn, job in enumerate(sorted(jobs, key=dispatch_key)[:room]):
            ranked.append((holding + turn, dispatch_key(job), job))
    ranked.sort(key=lambda entry: entry[:2])
    return [job for _, _, job in ranked]

"""Budgets, service side: which budgets are in force, what each has spent, and whether a new job is held.

The rule is pure (orchestrator/domain/budget.py); this module feeds it: the settings' ``BUDGETS``
merged with the stored ones (orchestrator/budgets/), and the period's jobs from one bounded store
query (``JobStore.created_between``). A job is checked against the budgets of its own tenant's jobs:
a channel or user belongs to one Slack workspace, which is one tenant.

The stored budgets are read once per ``BUDGET_CACHE_SECONDS`` (5 s), not at every submit (the ack's hot
path): a change made through this instance drops the copy at once; one made through another instance
of the service shows here after at most that long.

Two submissions racing at a budget's edge may both pass: like MAX_QUEUED_PER_TENANT, the check bounds
what is started, and the running cap (max-cost) bounds what is spent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.budgets.base import BudgetChange, BudgetStore, open_budgets
from orchestrator.domain.budget import SCOPES, Budget, applies, crossings, earliest_start, left, merged, spent, window
from orchestrator.domain.job import BudgetCrossing, Job, utcnow

if TYPE_CHECKING:
    from orchestrator.backends import Backend

# Jobs read for one spend sum: far above a period's jobs of one tenant in practice; past it the
# newest are summed (an undercount, logged by nobody: raise it if a tenant runs more).
PERIOD_JOBS_LIMIT = 5000


@dataclass(frozen=True)
class BudgetStanding:
    """One budget in force and where it stands in the current period."""

    budget: Budget
    spent_usd: float
    left_usd: float
    period_start: datetime
    period_end: datetime
    stored: bool  # set at run time (else from BUDGETS)

    def to_dict(self) -> dict[str, Any]:
        return {**self.budget.model_dump(), "spent_usd": self.spent_usd, "left_usd": self.left_usd,
                "period_start": self.period_start, "period_end": self.period_end,
                "source": "stored" if self.stored else "settings"}


class Spending:
    """The budgets of one deployment (a JobService holds one)."""

    def __init__(self, backend: Backend, clock: Callable[[], float] = time.monotonic):
        self.backend = backend
        self.settings = backend.settings
        self._store: BudgetStore | None = None
        self._lock = threading.Lock()
        self.clock = clock
        self._cached: tuple[float, list[Budget]] | None = None  # (fresh until, the stored budgets)

    @property
    def store(self) -> BudgetStore:
        # Opened on first use (a deployment without budgets never touches the table), outside the lock: on
        # a locked file each request fails after its own STORE_TIMEOUT, together, not one after another.
        if self._store is None:
            opened = open_budgets(self.backend)
            with self._lock:
                if self._store is None:
                    self._store, opened = opened, None
            if opened is not None:
                opened.close()
        return self._store

    def stored(self) -> list[Budget]:
        """The stored budgets, from memory while the copy is fresh (see the module)."""
        cached, now = self._cached, self.clock()
        if cached is not None and now < cached[0]:
            return cached[1]
        budgets = self.store.list()
        self._cached = (now + self.settings.BUDGET_CACHE_SECONDS, budgets)
        return budgets

    def in_force(self) -> list[Budget]:
        """BUDGETS, each (scope, key) overridden by a stored budget."""
        return merged(self.settings.BUDGETS, self.stored())

    def period_jobs(self, tenant_id: str, budgets: list[Budget], now: datetime) -> list[Job]:
        """The tenant's jobs created in any of ``budgets``' current periods."""
        if not budgets:
            return []
        end = max(window(b.period, now)[1] for b in budgets)
        return self.backend.store.created_between(tenant_id, earliest_start(budgets, now), end,
                                                  limit=PERIOD_JOBS_LIMIT)

    def check(self, job: Job, now: datetime | None = None) -> list[BudgetCrossing]:
        """The budgets ``job`` would cross (empty: it may run)."""
        now = now or utcnow()
        budgets = [b for b in self.in_force() if applies(b, job)]
        if not budgets or job.estimate is None:
            return []
        return crossings(job, budgets, self.period_jobs(job.tenant_id, budgets, now), now)

    def standing(self, tenant_id: str, now: datetime | None = None) -> list[BudgetStanding]:
        """The budgets a tenant's jobs are held to, with spend over its jobs: its own tenant budget and
        every channel and user budget."""
        now = now or utcnow()
        stored = {b.ident for b in self.stored()}
        budgets = [b for b in self.in_force() if b.scope != "tenant" or b.key == tenant_id]
        jobs = self.period_jobs(tenant_id, budgets, now)
        return [BudgetStanding(b, spent(b, jobs, now), left(b, jobs, now), *window(b.period, now),
                               stored=b.ident in stored) for b in budgets]

    def set(self, budget: Budget, by: str, now: datetime | None = None) -> BudgetChange | None:
        self._cached = None  # dropped before and after the write: a racing read keeps the old list at most a TTL
        try:
            return self.store.set(budget, by, now or utcnow())
        finally:
            self._cached = None

    def remove(self, scope: str, key: str, by: str, now: datetime | None = None) -> BudgetChange | None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)} (got {scope!r})")
        self._cached = None
        try:
            return self.store.remove(scope, key, by, now or utcnow())
        finally:
            self._cached = None

    def audit(self, limit: int = 50) -> list[BudgetChange]:
        return self.store.audit(limit)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

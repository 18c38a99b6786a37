"""Budget stops while jobs run: the dispatcher pass asks a running job to stop once a budget it counts
against is used up.

Who checks what:

- a job's own ``max_cost_usd`` is checked by its worker at every checkpoint (worker/stop.py
  ``CostMeter``): it knows its billed seconds and rates without a read;
- a budget (orchestrator/domain/budget.py) is checked here, at most every ``BUDGET_CHECK_SECONDS``
  (a setting, 30 s) in the dispatcher's pass, because it sums other jobs: one bounded store query per tenant
  with running jobs (``JobStore.created_between``, through orchestrator/spending.py).

The rule: a budget is used up when the **actual** cost of its period's jobs (orchestrator/domain/spend.py
``actual_usd``, a running job's up to now; estimates do not count here: they hold new jobs, only money
spent stops running ones) reaches its limit. Each running job the budget applies to then gets
``budget_stop`` (orchestrator/domain/cost_cap.py ``request_budget_stop``); its worker reads it with its
cancel poll (``CANCEL_POLL_SECONDS``) and stops at its next checkpoint. Worst-case overshoot: one check
interval plus one epoch of every running job the budget covers.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime

from orchestrator.domain.budget import Budget, applies, window
from orchestrator.domain.cost import format_usd
from orchestrator.domain.cost_cap import request_budget_stop
from orchestrator.domain.job import Job
from orchestrator.domain.spend import actual_usd
from orchestrator.domain.status import JobStatus
from orchestrator.spending import Spending

log = logging.getLogger(__name__)

BUDGET_CHECK_SECONDS = 30.0


def used_up(budget: Budget, jobs: list[Job], now: datetime) -> float | None:
    """The period's actual spend when it has reached ``budget``'s limit, else None."""
    start, end = window(budget.period, now)
    spent = round(sum(actual_usd(j, now) for j in jobs if applies(budget, j) and start <= j.created_at < end), 6)
    return spent if spent >= budget.usd else None


def stop_words(budget: Budget, spent: float) -> str:
    """e.g. "stopped: channel C0123's $50.00/month budget is used up ($50.10 spent)"."""
    return (f"stopped: {budget.scope} {budget.key}'s {format_usd(budget.usd)}/{budget.period} budget is used up "
            f"({format_usd(spent)} spent)")


class BudgetStops:
    """The dispatcher's budget check of running jobs (throttled; errors logged, never raised)."""

    def __init__(self, spending: Spending, interval: float = BUDGET_CHECK_SECONDS):
        self.spending, self.store = spending, spending.backend.store
        self.interval = interval
        self._next = 0.0

    def check(self, now: datetime) -> list[str]:
        """Ask each running job over a used-up budget to stop at its checkpoint; the task ids asked."""
        if time.monotonic() < self._next:
            return []
        self._next = time.monotonic() + self.interval
        try:
            active = [j for j in self.store.active() if j.status is JobStatus.RUNNING]
            return self._check(active, now) if active else []
        except Exception:  # noqa: BLE001 - a failed check waits for the next pass; jobs go on meanwhile
            log.warning("budget check of running jobs failed", exc_info=True)
            return []

    def _check(self, active: list[Job], now: datetime) -> list[str]:
        budgets = self.spending.in_force()
        if not budgets:
            return []
        running = defaultdict(list)
        for job in active:
            # An admin approved this job's spend over its budgets: they do not stop it (its own cap still does).
            approved = job.approval is not None and job.approval.decision == "approved"
            if job.budget_stop is None and not approved:
                running[job.tenant_id].append(job)
        asked = []
        for tenant, jobs in running.items():
            mine = [b for b in budgets if any(applies(b, j) for j in jobs)]
            if not mine:
                continue
            period = self.spending.period_jobs(tenant, mine, now)
            for budget in mine:
                spent = used_up(budget, period, now)
                if spent is None:
                    continue
                for job in (j for j in jobs if applies(budget, j) and j.task_id not in asked):
                    words = stop_words(budget, spent)
                    if self.store.update(job.task_id, lambda j, w=words: request_budget_stop(j, w, now),
                                         kind="budget_stop"):
                        log.info("job %s: %s; stopping at its next checkpoint", job.task_id, words)
                        asked.append(job.task_id)
        return asked

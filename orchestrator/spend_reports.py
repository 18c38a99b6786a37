"""Spend reports, service side: one bounded store read for a tenant's period, summed by the pure rule.

``GET /costs``, ``laxai costs`` and ``/train costs`` all come here. The period's jobs are read with
the query budgets already use (``JobStore.created_between``: tenant, created_at range, newest first,
at most ``PERIOD_JOBS_LIMIT``; on Firestore the (tenant_id, created_at) index serves it), summed by
orchestrator/domain/spend.py, with the budgets in force and what is left of them
(orchestrator/spending.py). A budget store that cannot be read leaves the budgets out (said in the
log); the report itself stands.
"""

from __future__ import annotations

import logging
from datetime import datetime

from orchestrator.domain.budget import window
from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.domain.job import utcnow
from orchestrator.domain.spend import PERIODS, SpendReport, report
from orchestrator.spending import PERIOD_JOBS_LIMIT, Spending
from orchestrator.stores.base import JobStore

log = logging.getLogger(__name__)


def check_period(period: str) -> str:
    """``period`` normalised, or a SpecError naming ``period`` and what is allowed."""
    name = (period or "").strip().lower()
    if name not in PERIODS:
        raise SpecError([FieldError("period", f"must be week or month (got {period!r})")])
    return name


def spend_report(store: JobStore, spending: Spending | None, tenant_id: str, period: str = "month",
                 now: datetime | None = None) -> SpendReport:
    """The tenant's spend in the current ``period`` (week or month, UTC), with its budgets."""
    period, now = check_period(period), now or utcnow()
    start, end = window(period, now)
    jobs = store.created_between(tenant_id, start, end, limit=PERIOD_JOBS_LIMIT)
    budgets = []
    if spending is not None:
        try:
            budgets = [standing.to_dict() for standing in spending.standing(tenant_id, now)]
        except Exception:  # noqa: BLE001 - the spend stands without them
            log.warning("budgets could not be read for the spend report of %s", tenant_id, exc_info=True)
    return report(tenant_id, period, (start, end), jobs, budgets, now, truncated=len(jobs) >= PERIOD_JOBS_LIMIT)

"""The per-job cost cap and budget stops: the rule, its words, and the transition that ends the job.

Pure domain code. A job may carry ``spec.max_cost_usd``; a budget that applies to it
(orchestrator/domain/budget.py) may also run out while it trains. Either way the job is
not killed mid-epoch: it stops at its next checkpoint, so the epochs it paid for stay done
and a Retry continues from there (``Job.resume_from``).

The rule (checked by the worker, which knows its billed seconds and rates without a read):

    spent = billed seconds of all the job's executions so far × the rates of this execution
    stop at the end of the current epoch, once spent >= max_cost_usd

``spent`` is priced exactly as ``cost.usd`` is (orchestrator/domain/transitions.py ``cost_of``),
so the figure in the words is the one /status shows. The check runs after each epoch's
checkpoint is saved (never after the last epoch: finishing beats stopping), so the worst-case
overshoot is one epoch (plus the final checkpoint upload), priced at the same rates: a job
whose epochs cost $0.40 with a $5.00 cap stops between $5.00 and $5.40.

A budget stop asked from outside (the service's budget pass: ``request_budget_stop``) is noted
on the job (``Job.budget_stop``); the worker reads it with its cancel poll and stops at the same
place, with the budget's words. The job ends ``cancelled`` with ``cancel.by == "budget"``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.domain.cost import Rates, format_usd
from orchestrator.domain.job import CancelRequest, EndReason, Job, Progress
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import finish, request_cancel

BUDGET = "budget"  # CancelRequest.by of a job stopped by its cost cap or a budget


def cap_reached(spent_usd: float, cap_usd: float | None) -> bool:
    """Whether ``spent_usd`` has reached the job's cap (None: no cap)."""
    return cap_usd is not None and spent_usd >= cap_usd


def cap_words(spent_usd: float, cap_usd: float) -> str:
    """What the thread and /status say, e.g. "stopped at the cost cap: $5.02 spent of $5.00"."""
    return f"stopped at the cost cap: {format_usd(spent_usd)} spent of {format_usd(cap_usd)}"


def stopped_for_budget(job: Job) -> bool:
    """The job ended cancelled because of its cost cap or a budget (a Retry resumes it)."""
    return job.status is JobStatus.CANCELLED and job.cancel is not None and job.cancel.by == BUDGET


def request_budget_stop(job: Job, why: str, now: datetime) -> Job | None:
    """Ask a running job to stop at its next checkpoint because a budget ran out (None: not running,
    or already asked). The worker sees it with its cancel poll; nothing else changes."""
    if job.status is not JobStatus.RUNNING or job.budget_stop is not None:
        return None
    return job.model_copy(update={"budget_stop": CancelRequest(by=BUDGET, at=now, detail=why), "updated_at": now})


def budget_stop(job: Job, attempt: int, now: datetime, rates: Rates, estimate: Rates | None = None, *,
                why: str | None = None, progress: Progress | None = None,
                artifacts: dict[str, Any] | None = None, training_seconds: float | None = None) -> Job | None:
    """End the job ``cancelled`` (by ``budget``) at the checkpoint the worker just kept: the cancel request
    and the closing in one compare-and-set, so the status table's running -> cancelling -> cancelled holds.
    ``why``: a budget's words; None: the cap's, from the cost this write records. A job a user cancelled
    meanwhile stays cancelled by them."""
    asked = request_cancel(job, BUDGET, now) if job.status is JobStatus.RUNNING else job
    if asked is None:
        return None
    mine = asked.cancel is not None and asked.cancel.by == BUDGET
    if not mine:  # a user's cancel came first: the job is theirs to have stopped
        by = asked.cancel.by if asked.cancel else "?"
        return finish(asked, attempt, EndReason.CANCELLED, now, rates, estimate, progress=progress,
                      artifacts=artifacts, training_seconds=training_seconds, detail=f"cancelled by {by}")
    closed = finish(asked, attempt, EndReason.CANCELLED, now, rates, estimate, progress=progress,
                    artifacts=artifacts, training_seconds=training_seconds)
    if closed is None:
        return None
    if why is None:
        why = cap_words(closed.cost.usd, job.spec.max_cost_usd or 0.0)
    last = closed.attempts[-1].model_copy(update={"detail": why})
    message = f"Stopped at epoch {closed.progress.epoch}/{closed.progress.total_epochs}: {why}"
    return closed.model_copy(update={
        "attempts": [*closed.attempts[:-1], last],
        "cancel": asked.cancel.model_copy(update={"detail": why}),
        "progress": closed.progress.model_copy(update={"message": message[:200]}),
    })

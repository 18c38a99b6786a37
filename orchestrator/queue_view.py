"""The live part of a job's status: its place in the queue and why it waits, and its ETA.

The rules are pure (``domain.queue_position``, ``domain.eta``); this module reads what they
need from the store, with a bound: the jobs holding a slot (at most about MAX_CONCURRENT_JOBS)
and each tenant's first ``SCAN_DEPTH`` queued jobs (``JobStore.queued_by_tenant``, what the
dispatcher reads too), never the whole queue. A job further back in a longer queue gets a
lower bound (``at_least``). One read serves every job of a request (``GET /jobs``) or of a
notifier pass (bot/notifier/queue_cards.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from orchestrator.config import Settings
from orchestrator.domain.eta import eta_of
from orchestrator.domain.job import Job, utcnow
from orchestrator.domain.queue_position import Caps, Line, awaiting
from orchestrator.domain.status import JobStatus
from orchestrator.stores.base import JobStore

# Each tenant's queued jobs read per look: a job further back is placed at least this far back.
SCAN_DEPTH = 50


def read_line(store: JobStore, settings: Settings, depth: int | None = None) -> Line:
    """The queue as the dispatcher would work through it now (two bounded store reads)."""
    depth = SCAN_DEPTH if depth is None else depth
    running = Counter(job.tenant_id for job in store.active())
    queued = store.queued_by_tenant(depth)
    return Line(queued, running, Caps(settings.MAX_CONCURRENT_JOBS, settings.MAX_JOBS_PER_TENANT), depth)


def live_views(jobs: Iterable[Job], store: JobStore, settings: Settings,
               now: datetime | None = None) -> list[dict[str, Any]]:
    """Each job's status view with ``queue`` (queued jobs) and ``eta`` (running ones) added;
    the queue is read once, and only when one of the jobs is queued."""
    jobs = list(jobs)
    now = now or utcnow()
    line = read_line(store, settings) if any(j.status is JobStatus.QUEUED for j in jobs) else None
    return [live_view(job, line, now) for job in jobs]


def live_view(job: Job, line: Line | None, now: datetime) -> dict[str, Any]:
    view = job.status_view()
    # A job the read did not find just left the queue (claimed, cancelled): no place to give.
    queued = line is not None and job.status is JobStatus.QUEUED and line.knows(job)
    place = line.place(job) if queued else None
    view["queue"] = None if place is None else {
        "position": place.position, "at_least": place.at_least,
        "waiting_for": {"reason": place.waiting_for.reason.value, "text": place.waiting_for.text}}
    if job.status is JobStatus.AWAITING_APPROVAL:  # held outside the line: a reason, no position
        why = awaiting(job)
        view["queue"] = {"position": None, "at_least": False,
                         "waiting_for": {"reason": why.reason.value, "text": why.text}}
    eta = eta_of(job, now)
    view["eta"] = None if eta is None else eta.model_dump()
    return view

"""Where a queued job stands in line, and why it waits: the pure rule behind ``/status``'s ``queue``.

Pure domain code. The line follows the dispatcher's real order (orchestrator/dispatcher.py,
``domain.fair_share``): the jobs the next pass would start come first (the fair-share order,
as many as there are free slots, each tenant below MAX_JOBS_PER_TENANT); then every other
queued job in the same round-robin order (a tenant's n-th waiting job, after the jobs it already
runs, is in round ``running + n``; within a round, priority then age). That is the order as
things stand now: a slot freed by another tenant's job, or a new job of higher priority, moves
it, and callers recompute it when jobs start or end.

``position``: how many jobs start before it, plus one (1 = next). Built from each tenant's first
``depth`` queued jobs (what the store hands out cheaply, ``JobStore.queued_by_tenant``): when a
longer queue could hide jobs ahead, ``at_least`` says the position is a lower bound.

``waiting_for.reason`` is a machine code and ``text`` the words a person reads. The codes:

    starting     a slot is free and the next dispatcher pass starts it
    slots        every slot is busy, or the free ones go to jobs ahead of it
    tenant_cap   its tenant already runs MAX_JOBS_PER_TENANT jobs
    awaiting_approval  its estimate would cross a budget: held outside the queue (no position)
                       until an admin approves it (``awaiting``)

A reason that holds a job outside the queue is decided before its place in line, so ``Waiting``
only grows.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from orchestrator.domain.budget import describe
from orchestrator.domain.fair_share import dispatch_key, fair_order
from orchestrator.domain.job import Job

Rank = tuple[int, tuple[int, datetime, str]]  # (round, the tenant's own order)


class Waiting(str, enum.Enum):
    """Why a queued job has not started (see the module docstring)."""

    STARTING = "starting"
    SLOTS = "slots"
    TENANT_CAP = "tenant_cap"
    AWAITING_APPROVAL = "awaiting_approval"


class WaitingFor(BaseModel):
    """Why it waits: ``reason`` for programs, ``text`` for people, ``brief`` for a card's one line."""

    model_config = ConfigDict(frozen=True)

    reason: Waiting
    text: str
    brief: str


class QueuePlace(BaseModel):
    """A queued job's place in line (1 = next) and why it waits."""

    model_config = ConfigDict(frozen=True)

    position: int
    at_least: bool = False  # a tenant's queue longer than what was read may hold jobs ahead of it
    waiting_for: WaitingFor

    def line(self) -> str:
        """One short line for a card: ``3rd in line · all 2 slots busy``."""
        where = f"{ordinal(self.position)}{'+' if self.at_least else ''} in line"
        return f"{where} \u00b7 {self.waiting_for.brief}"


@dataclass(frozen=True)
class Caps:
    """The dispatcher's caps: MAX_CONCURRENT_JOBS in all, MAX_JOBS_PER_TENANT per tenant."""

    slots: int
    per_tenant: int


def awaiting(job: Job) -> WaitingFor:
    """Why a job held by a budget waits: the budgets it would cross, and who may let it run."""
    crossed = job.approval.budgets if job.approval else []
    words = "; ".join(describe(c) for c in crossed) or "a budget"
    return WaitingFor(reason=Waiting.AWAITING_APPROVAL, text=f"would cross {words}; an admin can approve it",
                      brief="awaiting approval (over budget)")


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``22nd``..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _jobs(n: int) -> str:
    return f"{n} job{'' if n == 1 else 's'}"


class Line:
    """The queue as the dispatcher would work through it now.

    ``queued``: tenant -> its first queued jobs (any order; at most ``depth`` each when read with
    a bound, None: all of them); ``running``: tenant -> its jobs holding a slot."""

    def __init__(self, queued: Mapping[str, Sequence[Job]], running: Mapping[str, int], caps: Caps,
                 depth: int | None = None):
        self.running = dict(running)
        self.caps = caps
        self.busy = sum(self.running.values())
        self.depth = depth
        free = max(0, caps.slots - self.busy)
        starters = fair_order(queued, self.running, caps.per_tenant)[:free]
        self.starting = {job.task_id for job in starters}
        # Who waits for what is told as it will be once those start: they take their slots.
        self.after = dict(self.running)
        for job in starters:
            self.after[job.tenant_id] = self.after.get(job.tenant_id, 0) + 1
        ranked: list[tuple[bool, Rank, Job]] = []
        for tenant, jobs in queued.items():
            holding = self.running.get(tenant, 0)
            for turn, job in enumerate(sorted(jobs, key=dispatch_key)):
                ranked.append((job.task_id not in self.starting, (holding + turn, dispatch_key(job)), job))
        ranked.sort(key=lambda entry: entry[:2])  # the jobs starting now first, then round by round
        self.ranks = [rank for _, rank, _ in ranked]
        self.index = {job.task_id: n for n, (_, _, job) in enumerate(ranked)}
        # A tenant whose queue was cut at ``depth``: its unseen jobs are in rounds from this one on.
        self.horizon = {tenant: self.running.get(tenant, 0) + len(jobs) for tenant, jobs in queued.items()
                        if depth is not None and len(jobs) >= depth}

    def knows(self, job: Job) -> bool:
        """Whether ``job`` was read as queued, or may be queued further back than what was read."""
        return job.task_id in self.index or job.tenant_id in self.horizon

    def place(self, job: Job) -> QueuePlace:
        """``job``'s place; a queued job that was not read (past ``depth``) gets a lower bound."""
        n = self.index.get(job.task_id)
        if n is None:
            return self._beyond(job)
        rank = self.ranks[n]
        hidden = any(start <= rank[0] for tenant, start in self.horizon.items() if tenant != job.tenant_id)
        exact = job.task_id in self.starting or not hidden
        return QueuePlace(position=n + 1, at_least=not exact, waiting_for=self._why(job, n, not exact))

    def _beyond(self, job: Job) -> QueuePlace:
        """A job past its tenant's first ``depth``: every job read in an earlier round is ahead."""
        first = self.running.get(job.tenant_id, 0) + (self.depth or 0)
        starting = len(self.starting)  # the jobs starting now lead the line, whatever their round
        ahead = starting + sum(1 for rank in self.ranks[starting:] if rank[0] < first)
        return QueuePlace(position=ahead + 1, at_least=True, waiting_for=self._why(job, ahead, True))

    def _why(self, job: Job, ahead: int, at_least: bool) -> WaitingFor:
        holding, cap = self.after.get(job.tenant_id, 0), self.caps.per_tenant
        if job.task_id in self.starting:
            return WaitingFor(reason=Waiting.STARTING, text="a slot is free: the dispatcher is starting it",
                              brief="starting")
        if holding >= cap:
            text = f"your team has {holding} of {cap} jobs running (MAX_JOBS_PER_TENANT)"
            return WaitingFor(reason=Waiting.TENANT_CAP, text=text, brief=f"your team runs {holding} of {cap}")
        slots = self.caps.slots
        taken = sum(self.after.values())
        if taken >= slots:
            busy = "the only slot is busy" if slots == 1 else f"all {slots} slots busy"
        else:  # only when its tenant's queue was read in part
            busy = f"{taken} of {slots} slots busy"
        queue = f"{'at least ' if at_least else ''}{_jobs(ahead)} ahead" if ahead else "next in line"
        return WaitingFor(reason=Waiting.SLOTS, text=f"{busy}, {queue}", brief=busy)

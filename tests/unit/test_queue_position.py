"""A queued job's place in line and why it waits (orchestrator/domain/queue_position.py): the
dispatcher's fair-share order, the caps, priorities, ties, and the bound on what is read."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.domain.eta import eta_line, eta_of, minutes_text
from orchestrator.domain.fair_share import fair_order
from orchestrator.domain.job import Job, Progress
from orchestrator.domain.queue_position import Caps, Line, Waiting, ordinal
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def job(tenant: str, priority: int = 0, minute: int = 0, name: str = "", task_id: str | None = None) -> Job:
    created = T0 + timedelta(minutes=minute)
    extra = {"task_id": task_id} if task_id else {}
    return Job(tenant_id=tenant, spec=JobSpec(tenant_id=tenant, priority=priority, custom_name=name or None),
               created_at=created, updated_at=created, **extra)


def by_tenant(*jobs: Job) -> dict[str, list[Job]]:
    grouped: dict[str, list[Job]] = {}
    for item in jobs:
        grouped.setdefault(item.tenant_id, []).append(item)
    return grouped


def places(line: Line, *jobs: Job) -> dict[str, tuple[int, str]]:
    return {j.spec.custom_name: (line.place(j).position, line.place(j).waiting_for.reason.value) for j in jobs}


def test_one_tenant_with_every_slot_busy_waits_by_priority_then_age():
    jobs = [job("a", 0, 1, "low-old"), job("a", 5, 9, "high-new"), job("a", 0, 5, "low-new"), job("a", 5, 3, "high-old")]
    line = Line(by_tenant(*jobs), {"b": 2}, Caps(slots=2, per_tenant=2))
    assert places(line, *jobs) == {"high-old": (1, "slots"), "high-new": (2, "slots"), "low-old": (3, "slots"),
                                   "low-new": (4, "slots")}
    third = line.place(jobs[0])
    assert third.waiting_for.text == "all 2 slots busy, 2 jobs ahead"
    assert third.line() == "3rd in line \u00b7 all 2 slots busy" and not third.at_least
    assert line.place(jobs[3]).waiting_for.text == "all 2 slots busy, next in line"


def test_a_free_slot_means_starting_and_it_goes_by_fair_share_not_priority():
    # a runs one job already: b's low-priority job takes the free slot before a's urgent ones.
    a1, a2, b1 = job("a", 9, 0, "a1"), job("a", 9, 1, "a2"), job("b", 0, 5, "b1")
    line = Line(by_tenant(a1, a2, b1), {"a": 1}, Caps(slots=2, per_tenant=3))
    assert places(line, a1, a2, b1) == {"b1": (1, "starting"), "a1": (2, "slots"), "a2": (3, "slots")}
    assert line.place(b1).line() == "1st in line \u00b7 starting"
    # b1 takes the free slot: a1 waits for a slot, behind it.
    assert line.place(a1).waiting_for.text == "all 2 slots busy, 1 job ahead"


def test_a_tenant_at_its_cap_waits_for_its_own_jobs_while_others_start():
    a1, b1, b2 = job("a", 9, 0, "a1"), job("b", 0, 5, "b1"), job("b", 0, 6, "b2")
    line = Line(by_tenant(a1, b1, b2), {"a": 2}, Caps(slots=4, per_tenant=2))
    assert places(line, a1, b1, b2) == {"b1": (1, "starting"), "b2": (2, "starting"), "a1": (3, "tenant_cap")}
    why = line.place(a1).waiting_for
    assert why.text == "your team has 2 of 2 jobs running (MAX_JOBS_PER_TENANT)"
    assert line.place(a1).line() == "3rd in line \u00b7 your team runs 2 of 2"


def test_the_tenant_cap_is_the_reason_even_when_every_slot_is_busy():
    a1 = job("a", 0, 0, "a1")
    line = Line(by_tenant(a1), {"a": 1, "b": 1}, Caps(slots=2, per_tenant=1))
    assert places(line, a1) == {"a1": (1, "tenant_cap")}


def test_rounds_interleave_tenants_and_priority_breaks_ties_within_a_round():
    a = [job("a", 0, i, f"a{i}") for i in range(3)]
    b = [job("b", 5, 10 + i, f"b{i}") for i in range(2)]
    line = Line(by_tenant(*a, *b), {"x": 1}, Caps(slots=1, per_tenant=5))
    # Round 0: b0 (p5) before a0 (older, p0); round 1: b1 then a1; round 2: a2.
    order = sorted(a + b, key=lambda j: line.place(j).position)
    assert [j.spec.custom_name for j in order] == ["b0", "a0", "b1", "a1", "a2"]
    assert line.place(a[0]).waiting_for.text == "the only slot is busy, 1 job ahead"


def test_equal_priority_and_age_fall_back_to_the_task_id():
    first, second = job("a", 1, 0, "first", task_id="0000-a"), job("a", 1, 0, "second", task_id="ffff-a")
    other = job("b", 1, 0, "other", task_id="8888-b")
    line = Line(by_tenant(second, first, other), {"x": 1}, Caps(slots=1, per_tenant=3))
    assert places(line, first, second, other) == {"first": (1, "slots"), "other": (2, "slots"),
                                                  "second": (3, "slots")}


@pytest.mark.parametrize("seed", range(20))
def test_the_jobs_starting_now_are_the_ones_the_dispatcher_picks_and_positions_are_1_to_n(seed):
    rng = random.Random(seed)
    tenants = "abcd"[: rng.randint(1, 4)]
    jobs = [job(rng.choice(tenants), rng.randint(0, 3), rng.randint(0, 30), f"j{i}") for i in range(rng.randint(1, 12))]
    running = {t: rng.randint(0, 2) for t in tenants}
    caps = Caps(slots=rng.randint(1, 6), per_tenant=rng.randint(1, 3))
    queued = by_tenant(*jobs)
    line = Line(queued, running, caps)
    free = max(0, caps.slots - sum(running.values()))
    picked = [j.task_id for j in fair_order(queued, running, caps.per_tenant)[:free]]
    got = {j.task_id: line.place(j) for j in jobs}
    assert sorted(p.position for p in got.values()) == list(range(1, len(jobs) + 1))
    assert sorted(got[t].position for t in picked) == list(range(1, len(picked) + 1))
    assert {t for t, p in got.items() if p.waiting_for.reason is Waiting.STARTING} == set(picked)
    after = dict(running)
    for task_id in picked:
        after[queued_tenant(jobs, task_id)] += 1
    for j in jobs:
        reason = got[j.task_id].waiting_for.reason
        if reason is Waiting.TENANT_CAP:  # its tenant is at the cap once the jobs starting now run
            assert after[j.tenant_id] >= caps.per_tenant
        if reason is Waiting.SLOTS:  # every slot is taken once they run
            assert sum(after.values()) >= caps.slots and after[j.tenant_id] < caps.per_tenant


def queued_tenant(jobs: list[Job], task_id: str) -> str:
    return next(j.tenant_id for j in jobs if j.task_id == task_id)


def test_a_tenant_below_its_cap_whose_next_jobs_start_now_waits_for_its_cap():
    a1, a2 = job("a", 0, 0, "a1"), job("a", 0, 1, "a2")
    line = Line(by_tenant(a1, a2), {"a": 1}, Caps(slots=5, per_tenant=2))
    assert places(line, a1, a2) == {"a1": (1, "starting"), "a2": (2, "tenant_cap")}
    assert line.place(a2).waiting_for.text == "your team has 2 of 2 jobs running (MAX_JOBS_PER_TENANT)"


def test_a_queue_read_only_in_part_gives_a_lower_bound_where_unread_jobs_could_be_ahead():
    a = [job("a", 0, i, f"a{i}") for i in range(5)]
    b = [job("b", 0, 100 + i, f"b{i}") for i in range(3)]
    depth = 2
    read = {"a": a[:depth], "b": b[:depth]}  # what queued_by_tenant(2) hands out
    line = Line(read, {"x": 1}, Caps(slots=1, per_tenant=9), depth=depth)
    full = Line(by_tenant(*a, *b), {"x": 1}, Caps(slots=1, per_tenant=9))
    # Rounds 0 and 1 hold every job that could be ahead of them: exact, and equal to the full read.
    for j in (a[0], b[0], a[1], b[1]):
        assert (line.place(j).position, line.place(j).at_least) == (full.place(j).position, False)
    # a2 (round 2) was not read: at least the 4 jobs of rounds 0-1 are ahead of it; in truth 4 are.
    beyond = line.place(a[2])
    assert (beyond.position, beyond.at_least) == (5, True) and full.place(a[2]).position == 5
    assert beyond.waiting_for.text == "the only slot is busy, at least 4 jobs ahead"
    assert beyond.line() == "5th+ in line \u00b7 the only slot is busy"


def test_ordinals():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th"]


# -- the live ETA (orchestrator/domain/eta.py) --------------------------------------------------------


def running(eta_seconds: float | None, at: datetime = T0) -> Job:
    return job("a").model_copy(update={"status": JobStatus.RUNNING, "progress": Progress(
        epoch=3, total_epochs=10, eta_seconds=eta_seconds, updated_at=at)})


def test_the_eta_is_fixed_by_the_record_and_counts_down_with_the_clock():
    eta = eta_of(running(720.0))
    assert eta is not None and eta.seconds == 720.0 and eta.finishes_at == T0 + timedelta(minutes=12)
    assert eta_line(eta) == "ETA 12 min \u00b7 \u2248 12:12 UTC"
    later = eta_of(running(720.0), now=T0 + timedelta(minutes=5))
    assert later.seconds == 420.0 and later.finishes_at == eta.finishes_at
    assert eta_of(running(720.0), now=T0 + timedelta(hours=1)).seconds == 0.0  # overdue: never negative


def test_no_eta_before_a_pace_is_known_or_when_not_running():
    assert eta_of(running(None)) is None
    assert eta_of(running(60.0).model_copy(update={"status": JobStatus.QUEUED})) is None
    assert eta_of(running(60.0).model_copy(update={"status": JobStatus.CANCELLING})) is None


def test_minutes_text_is_coarse():
    assert [minutes_text(s) for s in (0, 30, 60, 61, 719, 3600, 7500)] == [
        "under 1 min", "1 min", "1 min", "2 min", "12 min", "1 h 00 min", "2 h 05 min"]

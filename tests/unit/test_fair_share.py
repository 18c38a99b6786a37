"""The fair-share order (orchestrator/domain/fair_share.py): round-robin across tenants, each
tenant's own jobs by priority then age, tenants at their cap left out."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from orchestrator.domain.fair_share import dispatch_key, fair_order
from orchestrator.domain.job import Job
from orchestrator.domain.spec import JobSpec

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def job(tenant: str, priority: int = 0, minute: int = 0, name: str = "") -> Job:
    """A queued job created ``minute`` minutes after T0 (smaller: older)."""
    created = T0 + timedelta(minutes=minute)
    return Job(tenant_id=tenant, spec=JobSpec(tenant_id=tenant, priority=priority, custom_name=name or None),
               created_at=created, updated_at=created)


def names(jobs: list[Job]) -> list[str]:
    return [j.spec.custom_name for j in jobs]


def by_tenant(*jobs: Job) -> dict[str, list[Job]]:
    grouped: dict[str, list[Job]] = {}
    for item in jobs:
        grouped.setdefault(item.tenant_id, []).append(item)
    return grouped


def test_one_tenant_goes_by_priority_then_age():
    queued = by_tenant(job("a", 0, 1, "low-old"), job("a", 5, 9, "high-new"), job("a", 0, 5, "low-new"),
                       job("a", 5, 3, "high-old"))
    assert names(fair_order(queued, {}, per_tenant=10)) == ["high-old", "high-new", "low-old", "low-new"]


def test_slots_go_round_robin_each_round_led_by_the_best_head():
    queued = by_tenant(*(job("a", 9, i, f"a{i}") for i in range(4)),
                       job("b", 0, 0, "b0"), job("b", 0, 1, "b1"),
                       job("c", 5, 7, "c0"))
    # Round 1: every tenant's head, best first (a's p9, c's p5, b's p0); round 2: a1 (p9) then b1; then a alone.
    assert names(fair_order(queued, {}, per_tenant=10)) == ["a0", "c0", "b0", "a1", "b1", "a2", "a3"]


def test_equal_priorities_across_tenants_go_oldest_head_first():
    queued = by_tenant(job("a", 3, 5, "a-new"), job("b", 3, 2, "b-old"), job("c", 3, 4, "c-mid"))
    assert names(fair_order(queued, {}, per_tenant=2)) == ["b-old", "c-mid", "a-new"]


def test_a_tenant_already_running_waits_for_those_with_nothing_running():
    queued = by_tenant(job("busy", 9, 0, "busy-next"), job("idle", 0, 9, "idle-next"), job("idle", 0, 10, "idle-2"))
    order = fair_order(queued, {"busy": 1}, per_tenant=3)
    # busy's round 2 (one running) comes after idle's round 1, whatever the priorities.
    assert names(order) == ["idle-next", "busy-next", "idle-2"]


def test_tenants_at_their_cap_get_nothing_and_others_only_their_room():
    queued = by_tenant(*(job("full", 9, i, f"f{i}") for i in range(3)),
                       *(job("one", 0, i, f"o{i}") for i in range(3)),
                       *(job("none", 0, i, f"n{i}") for i in range(3)))
    order = fair_order(queued, {"full": 2, "one": 1}, per_tenant=2)
    assert names(order) == ["n0", "o0", "n1"]


def test_the_starvation_case_a_huge_backlog_does_not_hide_another_tenant():
    flood = [job("flood", 9, i, f"f{i}") for i in range(202)]
    queued = by_tenant(*flood, job("victim", 0, 500, "victim"))
    assert names(fair_order(queued, {"flood": 1}, per_tenant=1)) == ["victim"]
    assert names(fair_order(queued, {}, per_tenant=1)) == ["f0", "victim"]


def test_the_order_does_not_depend_on_how_the_input_is_ordered():
    rng = random.Random(7)
    jobs = [job(f"t{rng.randrange(6)}", rng.randrange(10), rng.randrange(100), f"j{i}") for i in range(60)]
    expected = names(fair_order(by_tenant(*jobs), {"t1": 1}, per_tenant=3))
    for _ in range(5):
        rng.shuffle(jobs)
        assert names(fair_order(by_tenant(*jobs), {"t1": 1}, per_tenant=3)) == expected


def test_it_matches_a_slot_by_slot_reference():
    """Against a direct simulation: each free slot goes to the tenant holding the fewest slots,
    ties to the one whose next job is best; a tenant at its cap is passed over."""
    rng = random.Random(11)
    jobs = [job(f"t{rng.randrange(8)}", rng.randrange(10), rng.randrange(1000), f"j{i}") for i in range(120)]
    running = {"t0": 2, "t3": 1}
    cap = 3
    queues = {t: sorted(js, key=dispatch_key) for t, js in by_tenant(*jobs).items()}
    holding = {t: running.get(t, 0) for t in queues}
    reference = []
    while True:
        open_ = [t for t in queues if queues[t] and holding[t] < cap]
        if not open_:
            break
        tenant = min(open_, key=lambda t: (holding[t], dispatch_key(queues[t][0])))
        reference.append(queues[tenant].pop(0))
        holding[tenant] += 1
    assert names(fair_order(by_tenant(*jobs), running, per_tenant=cap)) == names(reference)

"""ModelRegistry contract: versions per (tenant, name), idempotent per job, tenants kept apart, aliases."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from orchestrator.registry.base import ModelEntry, UnknownVersion
from tests.contract.support import BASE_TIME


def entry(task_id: str, name: str = "players", tenant: str = "team-a", age: float = 0.0) -> ModelEntry:
    return ModelEntry(tenant_id=tenant, name=name, task_id=task_id, architecture="yolo11n",
                      checkpoint=f"/artifacts/{task_id}/best.pt", metrics={"mAP50": 0.5},
                      created_at=BASE_TIME - timedelta(seconds=age))


def test_versions_count_up_per_name(registry):
    versions = [registry.register(entry(f"t{i}", age=10 - i)).version for i in range(3)]
    assert versions == [1, 2, 3]
    assert registry.register(entry("t9", name="ball")).version == 1
    assert [e.version for e in registry.list("team-a", "players")] == [3, 2, 1]  # newest first
    assert [e.name for e in registry.list("team-a")][0] == "ball"
    assert len(registry.list("team-a", limit=2)) == 2


def test_registering_a_job_twice_returns_its_first_entry(registry):
    first = registry.register(entry("t1"))
    again = registry.register(entry("t1").model_copy(update={"metrics": {"mAP50": 0.9}}))
    assert again == first
    assert len(registry.list("team-a")) == 1
    assert registry.register(entry("t2")).version == 2


def test_tenants_are_kept_apart(registry):
    registry.register(entry("a1", tenant="team-a"))
    registry.register(entry("a2", tenant="team-a"))
    b = registry.register(entry("b1", tenant="team-b"))
    assert b.version == 1
    assert [e.task_id for e in registry.list("team-b")] == ["b1"]
    assert {e.task_id for e in registry.list("team-a")} == {"a1", "a2"}
    assert registry.list("team-c") == []


def test_concurrent_registrations_get_distinct_versions(registry):
    got = []
    threads = [threading.Thread(target=lambda i=i: got.append(registry.register(entry(f"t{i}")).version))
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(got) == [1, 2, 3, 4]


def test_an_alias_points_at_one_version_and_moves_with_who_and_when(registry):
    for i in range(3):
        registry.register(entry(f"t{i}", age=10 - i))
    assert registry.aliases("team-a") == []
    first, changed = registry.set_alias("team-a", "players", "production", 2, by="U1", now=BASE_TIME)
    assert changed and (first.version, first.set_by, first.set_at, first.previous) == (2, "U1", BASE_TIME, None)
    later = BASE_TIME + timedelta(minutes=5)
    moved, changed = registry.set_alias("team-a", "players", "production", 3, by="U2", now=later)
    assert changed and (moved.version, moved.set_by, moved.set_at, moved.previous) == (3, "U2", later, 2)
    again, changed = registry.set_alias("team-a", "players", "production", 3, by="U3")
    assert not changed and again == moved  # already there: nothing changes, the first mover stays recorded
    registry.set_alias("team-a", "players", "staging", 1, by="U1")
    assert [(a.alias, a.version) for a in registry.aliases("team-a", "players")] == [("production", 3), ("staging", 1)]
    assert registry.get("team-a", "players", 3).task_id == "t2"
    assert registry.get("team-a", "players", 4) is None


def test_an_alias_needs_an_existing_version_of_its_own_tenant(registry):
    registry.register(entry("a1", tenant="team-a"))
    registry.register(entry("b1", tenant="team-b"))
    registry.register(entry("b2", tenant="team-b"))
    with pytest.raises(UnknownVersion):
        registry.set_alias("team-a", "players", "production", 2, by="U1")  # team-b has a v2, team-a has not
    with pytest.raises(UnknownVersion):
        registry.set_alias("team-a", "ball", "production", 1, by="U1")
    registry.set_alias("team-b", "players", "production", 2, by="U9")
    assert registry.aliases("team-a") == []
    assert registry.get("team-a", "players", 2) is None
    assert [a.version for a in registry.aliases("team-b")] == [2]


def test_concurrent_moves_of_an_alias_end_at_one_of_them(registry):
    for i in range(4):
        registry.register(entry(f"t{i}"))
    results = []
    threads = [threading.Thread(target=lambda v=v: results.append(
        registry.set_alias("team-a", "players", "production", v, by=f"U{v}"))) for v in (1, 2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(changed for _, changed in results) and len(results) == 4
    final = registry.aliases("team-a", "players")[0]
    # Each move saw the one before it: the previous versions chain through every move exactly once.
    previous = sorted((a.previous or 0) for a, _ in results)
    assert previous == sorted([0] + [a.version for a, _ in results if a.version != final.version])

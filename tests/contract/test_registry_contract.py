"""ModelRegistry contract: versions per (tenant, name), idempotent per job, tenants kept apart."""

from __future__ import annotations

import threading
from datetime import timedelta

from orchestrator.registry.base import ModelEntry
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

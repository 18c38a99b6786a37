"""BudgetStore contract (orchestrator/budgets/base.py), the same from SQLite (local, in the job store's
database file) and Firestore (gcp, the emulator); and ``JobStore.created_between``, the bounded query a
budget period's spend is summed over.

Each store is opened anew where a restart is meant: what was set must be there after it.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.domain.budget import Budget
from orchestrator.domain.status import JobStatus
from tests.contract.support import BASE_TIME, make_job

T0 = datetime(2026, 11, 18, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def open_budgets(backend: str, tmp_path, request: pytest.FixtureRequest):
    opened = []
    if backend == "gcp":
        request.getfixturevalue("clean_firestore")

    def make():
        if backend == "local":
            from orchestrator.budgets.sqlite import SqliteBudgets

            made = SqliteBudgets(tmp_path / "laxai.db")
        else:
            from google.cloud import firestore

            from orchestrator.budgets.firestore import FirestoreBudgets
            from tests.gcp_fixtures import GCP_PROJECT

            made = FirestoreBudgets(firestore.Client(project=GCP_PROJECT))
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()
        client = getattr(made, "client", None)
        if client is not None:  # each Firestore store had its own client, as each process would
            from orchestrator.stores.firestore import close_client

            close_client(client)


def budget(scope: str = "channel", key: str = "C0123", usd: float = 50, period: str = "month") -> Budget:
    return Budget(scope=scope, key=key, usd=usd, period=period)


def test_nothing_is_stored_at_first(open_budgets):
    store = open_budgets()
    assert store.list() == [] and store.audit() == []
    assert store.remove("channel", "C0123", "U1", T0) is None  # nothing to remove: no audit entry either
    assert store.audit() == []


def test_set_replace_and_remove_are_stored_and_audited_and_survive_a_restart(open_budgets):
    store = open_budgets()
    first = store.set(budget(), "U-ADMIN", T0)
    assert (first.old, first.new, first.by, first.at) == (None, budget(), "U-ADMIN", T0)
    store.set(budget("user", "U0456", 20, "week"), "U-ADMIN", T0 + timedelta(seconds=1))
    store.set(budget("tenant", "team-a", 500), "api:team-a", T0 + timedelta(seconds=2))
    changed = store.set(budget(usd=80), "U-OTHER", T0 + timedelta(seconds=3))
    assert (changed.old.usd, changed.new.usd) == (50, 80)
    assert store.set(budget(usd=80), "U-OTHER", T0 + timedelta(seconds=4)) is None  # the same again: no change
    restarted = open_budgets()  # another connection or client: what a restarted service opens
    assert restarted.list() == [budget("tenant", "team-a", 500), budget(usd=80), budget("user", "U0456", 20, "week")]
    removed = restarted.remove("user", "U0456", "U-ADMIN", T0 + timedelta(seconds=5))
    assert (removed.old, removed.new) == (budget("user", "U0456", 20, "week"), None)
    assert [b.scope for b in open_budgets().list()] == ["tenant", "channel"]
    trail = open_budgets().audit()
    assert [(c.scope, c.key, c.by, c.old and c.old.usd, c.new and c.new.usd) for c in trail] == [
        ("user", "U0456", "U-ADMIN", 20, None),
        ("channel", "C0123", "U-OTHER", 50, 80),
        ("tenant", "team-a", "api:team-a", None, 500),
        ("user", "U0456", "U-ADMIN", None, 20),
        ("channel", "C0123", "U-ADMIN", None, 50),
    ]
    assert trail[0].at == T0 + timedelta(seconds=5) and len(open_budgets().audit(limit=2)) == 2


def test_concurrent_sets_from_two_stores_audit_every_change(open_budgets):
    stores = [open_budgets(), open_budgets()]
    errors: list[BaseException] = []

    def set_one(i: int) -> None:
        try:
            stores[i % 2].set(budget(usd=10 + i), f"U{i}", T0 + timedelta(seconds=i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=set_one, args=(i,)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not errors
    trail = stores[0].audit()
    assert len(trail) == 6
    # Each change's old value is the value the one before it stored: none was lost to a race.
    by_new = {c.new.usd: c for c in trail}
    olds = [c.old.usd for c in trail if c.old]
    assert len(set(olds)) == 5 and set(olds) < set(by_new)  # two writers never replaced the same value
    assert stores[1].list()[0].usd in by_new


def test_created_between_is_the_tenants_jobs_of_a_window_newest_first(store):
    inside = [store.create(make_job("team-a", age=age))[0] for age in (10, 20, 30)]
    store.create(make_job("team-a", age=5000))  # before the window
    store.create(make_job("team-b", age=15))  # another tenant's
    done = store.update(inside[1].task_id, lambda j: j.model_copy(update={"status": JobStatus.CANCELLED}))
    start, end = BASE_TIME - timedelta(seconds=100), BASE_TIME
    found = store.created_between("team-a", start, end)
    assert [j.task_id for j in found] == [inside[0].task_id, inside[1].task_id, inside[2].task_id]
    assert found[1].status is done.status  # any status
    assert [j.task_id for j in store.created_between("team-a", start, end, limit=2)] == [
        inside[0].task_id, inside[1].task_id]
    # [start, end): a job created exactly at the end belongs to the next window
    assert [j.task_id for j in store.created_between("team-a", start, BASE_TIME - timedelta(seconds=10))] == [
        inside[1].task_id, inside[2].task_id]
    assert store.created_between("team-c", start, end) == []

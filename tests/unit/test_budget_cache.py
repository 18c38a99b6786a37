"""The stored budgets are read once per BUDGET_CACHE_SECONDS, not at every submit (orchestrator/spending.py):
a change through the same instance shows at once, through another instance (a second service on the same
SQLite file) after at most the cache's time."""

from __future__ import annotations

from orchestrator.backends.assembly import open_backend
from orchestrator.config import load_settings
from orchestrator.domain.budget import Budget
from orchestrator.spending import Spending


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingReads:
    """The real budget store, with its reads counted."""

    def __init__(self, store) -> None:
        self.store, self.reads = store, 0

    def list(self):
        self.reads += 1
        return self.store.list()

    def __getattr__(self, name):
        return getattr(self.store, name)


def spending(tmp_path, clock: Clock, **env) -> tuple[Spending, CountingReads]:
    backend = open_backend(load_settings(LAXAI_HOME=tmp_path / "home", **env))
    spend = Spending(backend, clock=clock)
    counted = CountingReads(spend.store)
    spend._store = counted
    return spend, counted


def test_submits_read_the_stored_budgets_once_per_cache_period(tmp_path):
    clock = Clock()
    spend, counted = spending(tmp_path, clock)
    for _ in range(50):  # a burst of submits
        assert spend.in_force() == []
    assert counted.reads == 1
    clock.now += 5.1  # BUDGET_CACHE_SECONDS' default is 5
    spend.in_force()
    assert counted.reads == 2


def test_a_change_through_this_instance_shows_at_once_and_through_another_within_the_cache_time(tmp_path):
    clock = Clock()
    first, _ = spending(tmp_path, clock)
    second, counted = spending(tmp_path, clock)
    assert first.in_force() == second.in_force() == []
    budget = Budget(scope="channel", key="C0123", usd=50, period="month")
    first.set(budget, by="U1")
    assert first.in_force() == [budget]  # its own change: no wait
    assert second.in_force() == []  # the other instance's copy is still fresh
    clock.now += 5.1
    assert second.in_force() == [budget]
    second.remove("channel", "C0123", by="U1")
    assert second.in_force() == []
    assert counted.reads == 3


def test_a_cache_time_of_zero_reads_at_every_submit(tmp_path):
    spend, counted = spending(tmp_path, Clock(), BUDGET_CACHE_SECONDS="0")
    spend.in_force()
    spend.in_force()
    assert counted.reads == 2

"""Runtime change listeners (on_change / publish_change) on the store's own feed: SQLite and Firestore."""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator.config import Settings
from orchestrator.domain.job import Origin, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.transitions import claim
from orchestrator.serve import create_runtime
from orchestrator.stores.base import ChangeEvent
from tests.gcp_fixtures import GCP_PROJECT, gcp_backend_values

BACKENDS = [pytest.param("local", id="sqlite"), pytest.param("gcp", id="firestore", marks=pytest.mark.gcp)]


class Received:
    def __init__(self):
        self.events: list[ChangeEvent] = []
        self._guard = threading.Lock()

    def __call__(self, event: ChangeEvent) -> None:
        with self._guard:
            self.events.append(event)

    def kinds(self, task_id: str) -> list[str]:
        with self._guard:
            return [e.kind for e in self.events if e.task_id == task_id]

    def wait_for(self, task_id: str, count: int, timeout: float = 15) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.kinds(task_id)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.kinds(task_id)


@pytest.fixture(params=BACKENDS)
def runtime(request, tmp_path):
    values = dict(LAXAI_HOME=tmp_path / "home", GOOGLE_CLOUD_PROJECT=GCP_PROJECT)
    if request.param == "gcp":
        values.update(gcp_backend_values(request))
    made = create_runtime(Settings(**values), dispatch=False)
    made.start()
    yield made
    made.stop()


def submit(runtime) -> str:
    job, _ = runtime.jobs.submit(JobSpec(tenant_id="team-a"), Origin())
    return job.task_id


def test_listeners_follow_the_store_feed_until_they_stop(runtime):
    first, second = Received(), Received()
    one = runtime.on_change(first)
    two = runtime.on_change(second)
    task = submit(runtime)
    assert first.wait_for(task, 1) == ["created"]  # (Firestore snapshots may coalesce quick writes)
    runtime.backend.store.update(task, lambda j: claim(j, utcnow(), 60), kind="status:running")
    assert first.wait_for(task, 2) == second.wait_for(task, 2) == ["created", "status:running"]
    one.stop()
    assert runtime._feed is not None  # the other listener still follows it
    runtime.jobs.cancel("team-a", task, by="test")
    assert second.wait_for(task, 3)[-1] == "cancel"
    time.sleep(0.3)
    assert first.kinds(task) == ["created", "status:running"]
    two.stop()
    assert runtime._feed is None  # the last listener left: the store's feed is closed


def test_a_failing_listener_never_stops_the_feed(runtime):
    calls = []

    def broken(event: ChangeEvent) -> None:
        calls.append(event.kind)
        raise RuntimeError("listener bug")

    good = Received()
    runtime.on_change(broken)
    runtime.on_change(good)
    first, second = submit(runtime), submit(runtime)
    assert good.wait_for(first, 1) == ["created"] and good.wait_for(second, 1) == ["created"]
    assert calls == ["created", "created"]


def test_stopping_the_runtime_closes_the_feed(runtime):
    runtime.on_change(Received())
    assert runtime._feed is not None
    runtime.stop()
    assert runtime._feed is None


def test_published_changes_are_delivered_in_version_order_once(runtime):
    received = Received()
    runtime.settings.LAXAI_CHANGE_FEED = "eventarc"  # listeners get only what is published
    runtime.on_change(received)
    assert runtime._feed is None
    job, _ = runtime.jobs.submit(JobSpec(tenant_id="team-a"), Origin())
    for version in (2, 2, 1, 3):
        runtime.publish_change(ChangeEvent(None, job.model_copy(update={"version": version}), f"v{version}"))
    assert received.kinds(job.task_id) == ["v2", "v3"]

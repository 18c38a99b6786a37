"""GET /status's ``queue`` over real HTTP on a real SQLite store, for two tenants: the tenant cap as
the reason, fair share across tenants, a long queue read only in part. No dispatcher: a job is put
in a slot by the dispatcher's own transition (claim), so the queue stays as the test leaves it.
(tests/e2e/test_queue_status.py has the same with real workers and one slot.)"""

from __future__ import annotations

import httpx
import pytest

from orchestrator import queue_view
from orchestrator.config import load_settings
from orchestrator.domain.job import utcnow
from orchestrator.domain.transitions import claim
from orchestrator.serve import ServiceThread

BODY = {"training_params": {"epochs": 2}, "model_params": {"architecture": "yolov8n", "input_size": 64},
        "dataset": "synthetic:16"}


@pytest.fixture
def service(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path / "home", LAXAI_API_TOKENS="tok-a-123456:team-a,tok-b-123456:team-b",
                             MAX_CONCURRENT_JOBS=3, MAX_JOBS_PER_TENANT=1)
    with ServiceThread(settings, dispatch=False) as svc:
        svc.store = svc.runtime.backend.store
        yield svc


def client(service, token: str) -> httpx.Client:
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"})


def submit(http: httpx.Client, name: str, priority: int = 0) -> str:
    response = http.post("/orchestrate", json={**BODY, "custom_name": name, "priority": priority})
    assert response.status_code == 202, response.text
    return response.json()["task_id"]


def queue(http: httpx.Client, task_id: str) -> dict | None:
    response = http.get("/status", params={"task_id": task_id})
    assert response.status_code == 200, response.text
    return response.json()["queue"]


def test_the_tenant_cap_is_the_reason_while_another_tenants_job_takes_a_free_slot(service):
    with client(service, "tok-a-123456") as a, client(service, "tok-b-123456") as b:
        running = submit(a, "a-running")
        assert service.store.update(running, lambda j: claim(j, utcnow(), 600), kind="status:running")
        urgent = submit(a, "a-urgent", priority=9)
        other = submit(b, "b-later")
        assert queue(b, other) == {"position": 1, "at_least": False, "waiting_for": {
            "reason": "starting", "text": "a slot is free: the dispatcher is starting it"}}
        assert queue(a, urgent) == {"position": 2, "at_least": False, "waiting_for": {
            "reason": "tenant_cap", "text": "your team has 1 of 1 jobs running (MAX_JOBS_PER_TENANT)"}}
        assert queue(a, running) is None
        # The running job's own status: no queue, no ETA until its worker reports a pace.
        view = a.get(f"/jobs/{running}").json()
        assert view["status"] == "running" and view["queue"] is None and view["eta"] is None


def test_a_queue_longer_than_what_is_read_gives_a_lower_bound(service, monkeypatch):
    monkeypatch.setattr(queue_view, "SCAN_DEPTH", 2)
    with client(service, "tok-a-123456") as a:
        tasks = [submit(a, f"a{i}") for i in range(4)]
        places = [queue(a, t) for t in tasks]
    assert [(p["position"], p["at_least"]) for p in places[:2]] == [(1, False), (2, False)]
    assert [p["waiting_for"]["reason"] for p in places[:2]] == ["starting", "tenant_cap"]
    # a2 and a3 were not read: at least the two read jobs are ahead of them.
    assert [(p["position"], p["at_least"]) for p in places[2:]] == [(3, True), (3, True)]

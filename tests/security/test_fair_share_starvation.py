"""Fair share over REST (issue 14, finding 5): one tenant's backlog never starves another tenant,
and a tenant's queue is capped (MAX_QUEUED_PER_TENANT, 429 naming the limit).

The starvation attack runs against ``laxai serve`` as a real process with real workers; the
queue cap against the real HTTP service without a dispatcher (every job stays queued).
"""

from __future__ import annotations

import time

import httpx
import pytest

from orchestrator.config import load_settings
from orchestrator.serve import ServiceThread
from tests.support.serve import ServeProcess, kill_workers, tiny_job

TOKENS = {"tok-flood-123456": "flood", "tok-victim-123456": "victim"}
TOKEN_ENV = ",".join(f"{token}:{tenant}" for token, tenant in TOKENS.items())


def client(url: str, tenant: str) -> httpx.Client:
    token = next(t for t, name in TOKENS.items() if name == tenant)
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.mark.slow
def test_202_priority_9_jobs_of_one_tenant_do_not_keep_another_tenants_job_from_a_free_slot(tmp_path):
    home = tmp_path / "state"
    serve = ServeProcess(home, LAXAI_API_TOKENS=TOKEN_ENV, MAX_JOBS_PER_TENANT=1, MAX_CONCURRENT_JOBS=2,
                         MAX_QUEUED_PER_TENANT=300)
    try:
        with serve, client(serve.url, "flood") as flood, client(serve.url, "victim") as victim:
            # More jobs than the dispatcher used to read in one pass (200), all at the top priority.
            floods = [flood.post("/orchestrate", json=tiny_job(priority=9, custom_name=f"flood-{i}"))
                      for i in range(202)]
            assert {r.status_code for r in floods} == {202}
            # The dispatcher's first pass waits for the warm-start process (WARM_WORKERS: ~5 s of
            # imports, once, before it claims anything): the 3 s below starts from a warm service.
            deadline = time.monotonic() + 120
            while not flood.get("/jobs", params={"status": "running"}).json()["jobs"]:
                assert time.monotonic() < deadline, "no flood job started in 120 s"
                time.sleep(0.1)
            submitted = victim.post("/orchestrate", json=tiny_job(priority=0, custom_name="victim"))
            assert submitted.status_code == 202
            started, task = time.monotonic(), submitted.json()["task_id"]
            status = "queued"
            while status == "queued" and time.monotonic() - started < 3:
                time.sleep(0.05)
                status = victim.get("/status", params={"task_id": task}).json()["status"]
            assert status in {"running", "completed"}, f"victim's job still {status} after 3 s"
            # The flood tenant holds its one slot (MAX_JOBS_PER_TENANT); the rest of its backlog waits.
            assert len(flood.get("/jobs", params={"status": "running"}).json()["jobs"]) <= 1
            assert len(flood.get("/jobs", params={"status": "queued", "limit": 500}).json()["jobs"]) >= 201
    finally:
        kill_workers(home)


@pytest.fixture
def capped(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path / "capped", LAXAI_API_TOKENS=TOKEN_ENV, MAX_QUEUED_PER_TENANT=3)
    with ServiceThread(settings, dispatch=False) as service:  # nothing starts: every job stays queued
        with client(service.url, "flood") as flood, client(service.url, "victim") as victim:
            yield service, flood, victim


def test_a_submission_above_max_queued_per_tenant_is_429_naming_the_limit(capped):
    service, flood, victim = capped
    first = flood.post("/orchestrate", json=tiny_job(), headers={"Idempotency-Key": "first"})
    assert first.status_code == 202
    assert all(flood.post("/orchestrate", json=tiny_job()).status_code == 202 for _ in range(2))
    refused = flood.post("/orchestrate", json=tiny_job(custom_name="one too many"))
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "too_many_queued" and body["limit"] == 3
    assert "MAX_QUEUED_PER_TENANT is 3" in body["error"] and "3 of yours are waiting" in body["error"]
    assert refused.headers["Retry-After"]
    store = service.runtime.backend.store
    assert store.count_queued("flood") == 3
    assert "one too many" not in {j.spec.custom_name for j in store.list(tenant_id="flood", limit=10)}
    # A repeat of a stored request is answered by its job, not refused.
    again = flood.post("/orchestrate", json=tiny_job(), headers={"Idempotency-Key": "first"})
    assert again.status_code == 200 and again.json()["task_id"] == first.json()["task_id"]
    # The cap is per tenant.
    assert victim.post("/orchestrate", json=tiny_job()).status_code == 202


def test_retry_counts_against_the_queue_cap_and_a_freed_place_can_be_used(capped):
    _, flood, _ = capped
    tasks = [flood.post("/orchestrate", json=tiny_job()).json()["task_id"] for _ in range(3)]
    assert flood.post(f"/jobs/{tasks[0]}/cancel").json()["changed"]
    retried = flood.post(f"/jobs/{tasks[0]}/retry")  # back to 3 queued
    assert retried.status_code == 202
    refused = flood.post(f"/jobs/{tasks[0]}/retry")
    assert refused.status_code == 429 and refused.json()["limit"] == 3

"""Budgets and approval over real HTTP on a real SQLite store, without a dispatcher (the held job's fate is
the test's to decide): which budget holds a job (tenant, channel, user), spend counting the period's jobs,
admin-only decisions, and a tenant's admin confined to its own tenant.
(tests/e2e/test_budget_approval.py runs the same with `laxai serve`, its dispatcher and a real worker.)"""

from __future__ import annotations

import httpx
import pytest

from orchestrator.config import load_settings
from orchestrator.domain.job import CostSummary, Origin
from orchestrator.domain.spec import JobSpec, ModelParams, TrainingParams
from orchestrator.domain.status import JobStatus
from orchestrator.serve import ServiceThread

ADMIN_A, USER_A, ADMIN_B = "admin-a-123456", "user-a-123456", "admin-b-123456"
BODY = {"training_params": {"epochs": 2}, "model_params": {"architecture": "yolov8n", "input_size": 64},
        "dataset": "synthetic:16"}


@pytest.fixture
def service(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path / "home",
                             LAXAI_API_TOKENS=f"{ADMIN_A}:team-a:admin,{USER_A}:team-a,{ADMIN_B}:team-b:admin",
                             BUDGETS="channel:C0123=50/month")
    with ServiceThread(settings, dispatch=False) as svc:
        yield svc


def client(service, token: str) -> httpx.Client:
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def slack_job(service, channel: str = "C0123", user: str = "U0456"):
    """A job submitted as the Slack front end does (a channel and a user), through the same JobService."""
    spec = JobSpec(tenant_id="team-a", dataset="synthetic:16", training_params=TrainingParams(epochs=2),
                   model_params=ModelParams(architecture="yolov8n", input_size=64))
    job, _ = service.runtime.jobs.submit(spec, Origin(source="slack", channel=channel, user=user))
    return job


def spend(service, task_id: str, usd: float) -> None:
    """Make a job finished with an actual cost (what a completed run leaves)."""
    service.runtime.backend.store.update(task_id, lambda j: j.model_copy(update={
        "status": JobStatus.COMPLETED, "cost": CostSummary(usd=usd)}))


def test_a_channel_budget_holds_the_job_that_would_cross_it_and_only_that_channels(service):
    first = slack_job(service)
    assert first.status is JobStatus.QUEUED and first.estimate.usd > 0
    estimate = first.estimate.usd
    spend(service, first.task_id, 50 - estimate / 2)  # the channel has spent almost all of its budget
    held = slack_job(service)
    assert held.status is JobStatus.AWAITING_APPROVAL
    (crossed,) = held.approval.budgets
    assert (crossed.scope, crossed.key, crossed.limit_usd) == ("channel", "C0123", 50)
    assert crossed.spent_usd == pytest.approx(50 - estimate / 2) and crossed.estimate_usd == estimate
    assert slack_job(service, channel="C9999").status is JobStatus.QUEUED  # another channel: no budget
    with client(service, USER_A) as user:
        assert user.post("/orchestrate", json=BODY).json()["status"] == "queued"  # REST jobs have no channel
        view = user.get("/status", params={"task_id": held.task_id}).json()
        assert view["queue"]["waiting_for"]["reason"] == "awaiting_approval"
        assert "channel C0123's $50.00/month budget" in view["queue"]["waiting_for"]["text"]
        listed = user.get("/jobs", params={"status": "awaiting_approval"}).json()["jobs"]
        assert [j["task_id"] for j in listed] == [held.task_id]
        (standing,) = user.get("/budgets").json()["budgets"]
        assert standing["spent_usd"] == pytest.approx(50 - estimate / 2) and standing["left_usd"] > 0


def test_user_and_tenant_budgets_and_the_spend_of_queued_jobs(service):
    with client(service, ADMIN_A) as admin:
        assert admin.put("/budgets", json={"scope": "user", "key": "U7", "usd": 1000, "period": "week"}).status_code == 200
        first = slack_job(service, channel="C1", user="U7")
        assert first.status is JobStatus.QUEUED
        # The queued job's estimate counts: a budget just under two estimates holds the second job.
        tight = round(first.estimate.usd * 1.5, 6)
        assert admin.put("/budgets", json={"scope": "user", "key": "U7", "usd": tight, "period": "week"}).status_code == 200
        second = slack_job(service, channel="C1", user="U7")
        assert second.status is JobStatus.AWAITING_APPROVAL and second.approval.budgets[0].scope == "user"
        assert slack_job(service, channel="C1", user="U8").status is JobStatus.QUEUED  # another user
        assert admin.put("/budgets", json={"scope": "tenant", "key": "team-a", "usd": 0.000001}).status_code == 200
        both = slack_job(service, channel="C1", user="U7")
        assert {c.scope for c in both.approval.budgets} == {"tenant", "user"}
        bad = admin.put("/budgets", json={"scope": "channel", "key": "C1 and more", "usd": 5})
        assert bad.status_code == 422 and "key" in bad.json()["detail"][0]["field"]
        trail = service.runtime.jobs.spending.audit()
        assert [(c.scope, c.by) for c in trail][:2] == [("tenant", "api:team-a"), ("user", "api:team-a")]


def test_decisions_need_an_admin_of_the_jobs_own_tenant(service):
    first = slack_job(service)
    spend(service, first.task_id, 50 - first.estimate.usd / 2)
    held = slack_job(service)
    assert held.status is JobStatus.AWAITING_APPROVAL
    with client(service, USER_A) as user, client(service, ADMIN_B) as other, client(service, ADMIN_A) as admin:
        assert user.post(f"/jobs/{held.task_id}/approve").status_code == 403
        assert other.post(f"/jobs/{held.task_id}/approve").status_code == 404  # another tenant's job: not found
        assert user.get("/status", params={"task_id": held.task_id}).json()["status"] == "awaiting_approval"
        too_long = admin.post(f"/jobs/{held.task_id}/reject", json={"reason": "x" * 501})
        assert too_long.status_code == 422 and "reason" in too_long.text
        approved = admin.post(f"/jobs/{held.task_id}/approve")
        assert approved.status_code == 200 and approved.json()["status"] == "queued"
        assert approved.json()["queue"]["waiting_for"]["reason"] != "awaiting_approval"
        again = admin.post(f"/jobs/{held.task_id}/reject")
        assert again.status_code == 409 and "approved by api:team-a" in again.json()["error"]

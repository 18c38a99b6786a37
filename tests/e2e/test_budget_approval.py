"""Budgets and approval end to end: `laxai serve` as a real process (real SQLite, its dispatcher running,
real workers training a tiny job), REST over HTTP with an admin's token and a non-admin's
(orchestrator/domain/budget.py, orchestrator/spending.py, orchestrator/api/budget_routes.py)."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

from tests.support.serve import LAXAI, REPO, ServeProcess, kill_workers, tiny_job, wait_for

pytestmark = pytest.mark.slow

ADMIN, USER = "admin-token-123456", "user-token-123456"
TOKENS = f"{ADMIN}:e2e:admin,{USER}:e2e"
TINY = 0.000001  # USD a month: any real estimate crosses it


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "state"
    kill_workers(tmp_path / "state")


def as_(serve: ServeProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def status(client: httpx.Client, task_id: str) -> dict:
    response = client.get("/status", params={"task_id": task_id})
    assert response.status_code == 200, response.text
    return response.json()


def held_job(client: httpx.Client, name: str) -> dict:
    response = client.post("/orchestrate", json=tiny_job(custom_name=name))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "awaiting_approval", body
    return body


def test_a_job_over_budget_waits_for_an_admin_who_approves_or_rejects_it(home):
    serve = ServeProcess(home, extra_env={"LAXAI_API_TOKENS": TOKENS, "BUDGETS": "tenant:e2e=0.000001/month"})
    with serve, as_(serve, USER) as user, as_(serve, ADMIN) as admin:
        body = held_job(user, "over")
        (crossed,) = body["approval"]["budgets"]
        assert (crossed["scope"], crossed["key"], crossed["limit_usd"], crossed["period"]) == ("tenant", "e2e", TINY,
                                                                                               "month")
        assert crossed["estimate_usd"] == body["estimate"]["usd"] > TINY and crossed["spent_usd"] == 0
        task = body["task_id"]
        time.sleep(3)  # fifteen dispatcher passes (DISPATCH_INTERVAL=0.2): none may start it
        view = status(user, task)
        assert view["status"] == "awaiting_approval" and view["attempts"] == [] and view["started_at"] is None
        assert view["queue"]["position"] is None
        assert view["queue"]["waiting_for"]["reason"] == "awaiting_approval"
        assert "tenant e2e's" in view["queue"]["waiting_for"]["text"] and "approve" in view["queue"]["waiting_for"]["text"]

        refused = user.post(f"/jobs/{task}/approve")
        assert refused.status_code == 403 and "admin" in refused.json()["error"]
        assert user.post(f"/jobs/{task}/reject", json={"reason": "mine"}).status_code == 403
        assert status(user, task)["status"] == "awaiting_approval" and status(user, task)["approval"]["decision"] is None

        approved = admin.post(f"/jobs/{task}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["approval"]["decision"] == "approved"
        assert approved.json()["approval"]["decided_by"] == "api:e2e"
        done = wait_for(user, [task], timeout=300)[task]
        assert done["status"] == "completed", done
        assert len(done["attempts"]) == 1 and done["cost"]["usd"] > 0
        assert admin.post(f"/jobs/{task}/approve").status_code == 409  # decided already

        second = held_job(user, "rejected")["task_id"]
        rejected = admin.post(f"/jobs/{second}/reject", json={"reason": "not this month"})
        assert rejected.status_code == 200, rejected.text
        view = status(user, second)
        assert view["status"] == "cancelled" and view["attempts"] == []
        assert (view["approval"]["decision"], view["approval"]["reason"]) == ("rejected", "not this month")
        assert "not this month" in view["progress"]["message"]
        conflict = admin.post(f"/jobs/{second}/approve")
        assert conflict.status_code == 409 and "cancelled" in conflict.json()["error"]

        third = held_job(user, "withdrawn")["task_id"]
        cancelled = user.post(f"/jobs/{third}/cancel")  # its submitter may withdraw it at once
        assert cancelled.json() == {"task_id": third, "status": "cancelled", "changed": True}
        assert admin.post("/jobs/no-such-job/approve").status_code == 404

        # The CLI: `laxai submit` says it is held and why; `laxai approve` needs an admin's token.
        submitted = cli(serve, USER, "submit", "--dataset", "synthetic:8", "--epochs", "1", "--arch", "yolov8n",
                        "--imgsz", "64", "--batch-size", "8")
        fourth = submitted.stdout.strip()
        assert submitted.returncode == 0 and "Awaiting approval: would cross tenant e2e's" in flat(submitted.stderr)
        denied = cli(serve, USER, "approve", fourth)
        assert denied.returncode == 2 and "only an admin may approve" in flat(denied.stderr)
        done = cli(serve, ADMIN, "reject", fourth, "--reason", "later")
        assert done.returncode == 0 and done.stdout.strip() == f"{fourth}: cancelled"
        assert status(user, fourth)["approval"]["reason"] == "later"


def flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


def cli(serve: ServeProcess, token: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAXAI_HOME": str(serve.home), "LAXAI_API_TOKENS": TOKENS, "COLUMNS": "200"}
    return subprocess.run([LAXAI, *args, "--url", serve.url, "--token", token], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_budgets_set_over_rest_are_admin_only_and_survive_a_restart(home):
    serve = ServeProcess(home, extra_env={"LAXAI_API_TOKENS": TOKENS, "BUDGETS": "tenant:e2e=0.000001/month"})
    with serve, as_(serve, USER) as user, as_(serve, ADMIN) as admin:
        listed = user.get("/budgets").json()["budgets"]
        assert [(b["scope"], b["key"], b["usd"], b["source"]) for b in listed] == [("tenant", "e2e", TINY, "settings")]
        raise_it = {"scope": "tenant", "key": "e2e", "usd": 1000, "period": "month"}
        refused = user.put("/budgets", json=raise_it)
        assert refused.status_code == 403
        assert user.get("/budgets").json()["budgets"][0]["usd"] == TINY  # nothing changed
        bad = admin.put("/budgets", json={**raise_it, "scope": "team"})
        assert bad.status_code == 422 and "scope" in bad.text and "tenant, channel, user" in bad.text
        negative = admin.put("/budgets", json={**raise_it, "usd": -5})
        assert negative.status_code == 422 and "usd" in negative.text
        other = admin.put("/budgets", json={**raise_it, "key": "someone-else"})
        assert other.status_code == 403  # an admin sets its own tenant's budget only
        stored = admin.put("/budgets", json=raise_it)
        assert stored.status_code == 200, stored.text
        channel = admin.put("/budgets", json={"scope": "channel", "key": "C0123", "usd": 50, "period": "week"})
        assert channel.status_code == 200
    # The block stopped the service: start it again on the same LAXAI_HOME (a restart).
    with serve, as_(serve, USER) as user, as_(serve, ADMIN) as admin:
        after = {(b["scope"], b["key"]): b for b in user.get("/budgets").json()["budgets"]}
        assert (after["tenant", "e2e"]["usd"], after["tenant", "e2e"]["source"]) == (1000, "stored")
        assert (after["channel", "C0123"]["usd"], after["channel", "C0123"]["period"]) == (50, "week")
        job = user.post("/orchestrate", json=tiny_job(custom_name="fits"))
        assert job.status_code == 202 and job.json()["status"] == "queued" and job.json()["approval"] is None
        user.post(f"/jobs/{job.json()['task_id']}/cancel")
        removed = admin.put("/budgets", json={**raise_it, "usd": None})  # back to the settings' base
        assert [(b["usd"], b["source"]) for b in removed.json()["budgets"] if b["scope"] == "tenant"] == [
            (TINY, "settings")]
        assert held_job(user, "held-again")["approval"]["budgets"][0]["limit_usd"] == TINY


def test_a_bad_budgets_setting_stops_serve_at_start_naming_it(tmp_path):
    env = {**os.environ, "LAXAI_HOME": str(tmp_path), "BUDGETS": "tenant:e2e=50/fortnight"}
    result = subprocess.run([LAXAI, "serve", "--port", "0"], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    said = flat(result.stderr)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "BUDGETS" in said and "week or month" in said and "fortnight" in said and "Traceback" not in said

"""REST API over real HTTP (uvicorn on a free port, real SQLite file): auth, tenancy, validation."""

from __future__ import annotations

import httpx
import pytest

from orchestrator.config import load_settings
from orchestrator.serve import ServiceThread

SEED_BODY = {
    "tenant_id": "team-a",
    "training_params": {"epochs": 10, "batch_size": 16, "learning_rate": 0.001, "model_type": "detection"},
    "model_params": {"architecture": "yolo", "input_size": 640},
    "custom_name": "my-training-job",
    "wandb_tags": ["tag1", "tag2"],
}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    settings = load_settings(LAXAI_HOME=tmp_path_factory.mktemp("api"), LAXAI_API_TOKENS="tok-a-123456:team-a,tok-b-123456:team-b")
    # No dispatcher: these tests look at the API, not at training.
    with ServiceThread(settings, dispatch=False) as svc:
        yield svc


@pytest.fixture
def a(service):
    with httpx.Client(base_url=service.url, headers={"Authorization": "Bearer tok-a-123456"}) as client:
        yield client


@pytest.fixture
def b(service):
    with httpx.Client(base_url=service.url, headers={"Authorization": "Bearer tok-b-123456"}) as client:
        yield client


def test_seed_body_is_accepted_and_status_has_seed_format(a):
    submitted = a.post("/orchestrate", json=SEED_BODY)
    assert submitted.status_code == 202, submitted.text
    task_id = submitted.json()["task_id"]
    status = a.get("/status", params={"task_id": task_id})
    assert status.status_code == 200
    body = status.json()
    assert body["task_id"] == task_id and body["status"] == "queued"
    assert body["created_at"].endswith("Z")
    assert {"epoch", "total_epochs", "progress_percent", "message"} <= set(body["progress"])
    assert body["progress"]["total_epochs"] == 10
    assert body["attempts"] == []


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dG9rLWE="}])
def test_requests_without_a_valid_token_get_401(service, headers):
    response = httpx.post(f"{service.url}/orchestrate", json=SEED_BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{service.url}/jobs", headers=headers).status_code == 401


def test_another_tenants_job_is_404(a, b):
    task_id = a.post("/orchestrate", json=SEED_BODY).json()["task_id"]
    assert b.get("/status", params={"task_id": task_id}).status_code == 404
    assert b.post(f"/jobs/{task_id}/cancel").status_code == 404
    assert b.post(f"/jobs/{task_id}/retry").status_code == 404
    assert all(job["task_id"] != task_id for job in b.get("/jobs").json()["jobs"])
    assert a.get("/status", params={"task_id": task_id}).status_code == 200


def test_tenant_id_of_another_tenant_is_refused(b):
    response = b.post("/orchestrate", json=SEED_BODY)  # body says team-a, token is team-b
    assert response.status_code == 403
    assert "tenant_id" in response.json()["error"]


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"training_params": {"epochs": 0}}, "training_params.epochs", "greater than or equal to 1"),
        ({"training_params": {"epochs": 1001}}, "training_params.epochs", "less than or equal to 1000"),
        ({"training_params": {"epochs": "ten"}}, "training_params.epochs", "whole number"),
        ({"training_params": {"batch_size": 2048}}, "training_params.batch_size", "1024"),
        ({"training_params": {"learning_rate": 0}}, "training_params.learning_rate", "greater than 0"),
        ({"training_params": {"learning_rate": 2}}, "training_params.learning_rate", "less than or equal to 1"),
        ({"training_params": {"epoch": 3}}, "training_params.epoch", "did you mean 'epochs'"),
        ({"model_params": {"architecture": "resnet"}}, "model_params.architecture", "yolo11n"),
        ({"model_params": {"input_size": 100}}, "model_params.input_size", "multiple of 32"),
        ({"gpu_type": "tpu"}, "gpu_type", "nvidia-l4"),
        ({"dataset": "gs://bucket/data"}, "dataset", "gcp backend"),
        ({"dataset": "/no/such/dir"}, "dataset", "not found in your data roots"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"custom_name": "x" * 10_000}, "custom_name", "at most 100"),
        ({"wandb_tags": ["t"] * 10_000}, "wandb_tags", "at most 20"),
    ],
)
def test_bad_bodies_get_422_naming_the_field(a, patch, field, words):
    body = {**SEED_BODY, **patch}
    for key in ("training_params", "model_params"):
        if key in patch:
            body[key] = {**SEED_BODY[key], **patch[key]}
    before = len(a.get("/jobs", params={"limit": 500}).json()["jobs"])
    response = a.post("/orchestrate", json=body)
    assert response.status_code == 422, response.text
    fields = {d["field"]: d["message"] for d in response.json()["detail"]}
    assert field in fields, fields
    assert words in fields[field]
    assert "Traceback" not in response.text
    assert len(a.get("/jobs", params={"limit": 500}).json()["jobs"]) == before  # nothing half-written


def test_invalid_json_and_wrong_shapes_are_422_not_500(a):
    for content in (b"{not json", b"[1, 2]", b"null", b'"text"'):
        response = a.post("/orchestrate", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (content, response.text)
        assert response.json()["detail"][0]["field"] == "body"


def test_a_megabyte_body_is_refused_with_413(a):
    response = a.post("/orchestrate", content=b"{" + b" " * 1_000_000 + b"}",
                      headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "too large" in response.json()["error"]


def test_idempotency_key_returns_the_same_task(a):
    first = a.post("/orchestrate", json=SEED_BODY, headers={"Idempotency-Key": "k-1"})
    again = a.post("/orchestrate", json=SEED_BODY, headers={"Idempotency-Key": "k-1"})
    other = a.post("/orchestrate", json=SEED_BODY, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["task_id"] == again.json()["task_id"] != other.json()["task_id"]


def test_cancel_a_queued_job_then_retry_it(a):
    task_id = a.post("/orchestrate", json=SEED_BODY).json()["task_id"]
    assert a.post(f"/jobs/{task_id}/retry").status_code == 409  # still queued
    cancelled = a.post(f"/jobs/{task_id}/cancel").json()
    assert cancelled == {"task_id": task_id, "status": "cancelled", "changed": True}
    assert a.post(f"/jobs/{task_id}/cancel").json()["changed"] is False  # double click is harmless
    retried = a.post(f"/jobs/{task_id}/retry")
    assert retried.status_code == 202
    assert retried.json()["retry_of"] == task_id
    new = a.get("/status", params={"task_id": retried.json()["task_id"]}).json()
    assert new["status"] == "queued" and new["retry_of"] == task_id


def test_jobs_filter_by_status(a):
    task_id = a.post("/orchestrate", json=SEED_BODY).json()["task_id"]
    a.post(f"/jobs/{task_id}/cancel")
    cancelled = a.get("/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert task_id in {j["task_id"] for j in cancelled}
    assert all(j["status"] == "cancelled" for j in cancelled)
    assert a.get("/jobs", params={"status": "bogus"}).status_code == 422


def test_status_needs_task_id_and_unknown_is_404(a):
    missing = a.get("/status")
    assert missing.status_code == 422 and missing.json()["detail"][0]["field"] == "task_id"
    assert a.get("/status", params={"task_id": "nope"}).status_code == 404


def test_health_and_openapi_need_no_token(service):
    assert httpx.get(f"{service.url}/healthz").json() == {"status": "ok", "backend": "local"}
    spec = httpx.get(f"{service.url}/openapi.json").json()
    assert {"/orchestrate", "/status", "/jobs", "/jobs/{task_id}/cancel", "/jobs/{task_id}/retry"} <= set(spec["paths"])
    assert httpx.get(f"{service.url}/docs").status_code == 200

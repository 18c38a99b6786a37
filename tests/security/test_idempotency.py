"""An Idempotency-Key is bound to the request it was first used for (issue 14, finding 9).

The same key with the same body returns the first job; the same key with another body (or
another job retried) is refused with 422 ``idempotency_key_reused`` and nothing is stored.
On both backends (SQLite, and Firestore on its emulator) and over HTTP.
"""

from __future__ import annotations

import httpx
import pytest

from orchestrator.config import load_settings
from orchestrator.domain.job import IdempotencyKeyReused, Job, Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.serve import ServiceThread
from tests.gcp_fixtures import GCP_PROJECT, clean_firestore, firestore_emulator  # noqa: F401 - fixtures

BACKENDS = [pytest.param("local", id="local"), pytest.param("gcp", id="gcp", marks=pytest.mark.gcp)]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "local":
        from orchestrator.stores.sqlite import SqliteJobStore

        made = SqliteJobStore(tmp_path / "laxai.db")
    else:
        request.getfixturevalue("clean_firestore")
        from google.cloud import firestore

        from orchestrator.stores.firestore import FirestoreJobStore

        made = FirestoreJobStore(firestore.Client(project=GCP_PROJECT), "training_jobs", close_client=True)
    yield made
    made.close()


def keyed(key: str, epochs: int = 5, tenant: str = "team-a", **fields) -> Job:
    spec = JobSpec.model_validate({"tenant_id": tenant, "training_params": {"epochs": epochs}})
    return Job(tenant_id=tenant, spec=spec, idempotency_key=key, **fields)


def test_the_same_key_and_body_returns_the_first_job(store):
    first, created = store.create(keyed("k1"))
    again, created_again = store.create(keyed("k1"))  # a new Job object: a retried request
    assert created and not created_again
    assert again.task_id == first.task_id


def test_the_same_key_with_another_body_is_refused_and_nothing_is_stored(store):
    first, _ = store.create(keyed("k2", epochs=5))
    with pytest.raises(IdempotencyKeyReused) as refused:
        store.create(keyed("k2", epochs=50))
    assert refused.value.code == "idempotency_key_reused"
    assert refused.value.errors[0].field == "Idempotency-Key"
    with pytest.raises(IdempotencyKeyReused):  # a retry of some job is another request too
        store.create(keyed("k2", epochs=5, retry_of="another-job"))
    assert [job.task_id for job in store.list(tenant_id="team-a")] == [first.task_id]
    assert store.get(first.task_id).spec.training_params.epochs == 5


def test_keys_are_per_tenant(store):
    a, _ = store.create(keyed("shared", epochs=5, tenant="team-a"))
    b, created = store.create(keyed("shared", epochs=50, tenant="team-b"))
    assert created and a.task_id != b.task_id


def test_who_clicked_and_which_thread_are_not_part_of_the_request():
    # A repeated Slack delivery or a second click on one card carries another user or thread.
    one = keyed("k", origin=Origin(source="slack", team="T1", channel="C1", user="U1", thread_ts="1.0",
                                   request_id="r1"))
    other = keyed("k", origin=Origin(source="slack", team="T1", channel="C1", user="U2", thread_ts="2.0",
                                     request_id="r2"))
    assert one.request_hash() == other.request_hash()
    elsewhere = keyed("k", origin=Origin(source="slack", team="T1", channel="C2"))
    assert elsewhere.request_hash() != one.request_hash()


# -- over HTTP -------------------------------------------------------------------------

BODY = {"training_params": {"epochs": 3}, "model_params": {"input_size": 128}, "custom_name": "idem"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = load_settings(LAXAI_HOME=tmp_path_factory.mktemp("idem"), LAXAI_API_TOKENS="tok-a-123456:team-a")
    with ServiceThread(settings, dispatch=False) as svc, \
            httpx.Client(base_url=svc.url, headers={"Authorization": "Bearer tok-a-123456"}) as http:
        yield http


def test_http_same_key_same_body_replays_the_first_job(client):
    first = client.post("/orchestrate", json=BODY, headers={"Idempotency-Key": "same"})
    # The same request, spelled differently (explicit defaults, keys reordered): the same body.
    spelled = {"custom_name": "idem", "model_params": {"input_size": 128, "architecture": "yolo11n"},
               "training_params": {"epochs": 3, "batch_size": 16}}
    again = client.post("/orchestrate", json=spelled, headers={"Idempotency-Key": "same"})
    assert first.status_code == 202 and again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["task_id"] == first.json()["task_id"]


def test_http_same_key_other_body_is_422_idempotency_key_reused(client):
    first = client.post("/orchestrate", json=BODY, headers={"Idempotency-Key": "reused"})
    other = client.post("/orchestrate", json={**BODY, "training_params": {"epochs": 300}},
                        headers={"Idempotency-Key": "reused"})
    assert other.status_code == 422, other.text
    payload = other.json()
    assert payload["code"] == "idempotency_key_reused" and payload["error"].startswith("idempotency_key_reused")
    assert payload["detail"][0]["field"] == "Idempotency-Key"
    view = client.get("/status", params={"task_id": first.json()["task_id"]}).json()
    assert view["progress"]["total_epochs"] == 3  # the first job is untouched
    jobs = client.get("/jobs", params={"limit": 500}).json()["jobs"]
    assert all(job["progress"]["total_epochs"] != 300 for job in jobs)  # nothing of the refused one stored


def test_http_retry_with_a_key_used_for_a_submit_is_refused(client):
    submitted = client.post("/orchestrate", json=BODY, headers={"Idempotency-Key": "submit-key"}).json()
    client.post(f"/jobs/{submitted['task_id']}/cancel")
    retried = client.post(f"/jobs/{submitted['task_id']}/retry", headers={"Idempotency-Key": "submit-key"})
    assert retried.status_code == 422 and retried.json()["code"] == "idempotency_key_reused", retried.text

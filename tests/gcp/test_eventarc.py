"""POST /eventarc/firestore over real HTTP: Firestore CloudEvents in, change listeners called.

Events are built with the google-events types from real jobs, encoded as the
Firestore store encodes them (tests/gcp/eventarc_support.py), signed like
Eventarc's pushes (RS256 tokens checked against the served certificates).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from orchestrator.config import Settings
from orchestrator.domain.job import Origin, Progress, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.transitions import claim, report_progress, worker_started
from orchestrator.serve import create_runtime
from orchestrator.stores.base import ChangeEvent
from tests.gcp.eventarc_support import DATABASE, headers, job_document, to_value, written
from tests.gcp.support import SERVICE_ACCOUNT, AppServer, bearer
from tests.gcp_fixtures import GCP_PROJECT

SERVICE_URL = "https://laxai-service-x7.a.run.app"
AUDIENCE = f"{SERVICE_URL}/eventarc/firestore"


class Received:
    """A change listener that keeps what it gets."""

    def __init__(self):
        self.events: list[ChangeEvent] = []
        self.arrived = threading.Event()

    def __call__(self, event: ChangeEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    @property
    def versions(self) -> list[tuple[str, int]]:
        return [(e.task_id, e.job.version) for e in self.events]


class Service:
    def __init__(self, server: AppServer, issuer):
        self.server, self.runtime = server, server.runtime
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.token = issuer.token(AUDIENCE)
        self.received = Received()
        self.subscription = self.runtime.on_change(self.received)

    def post(self, body: bytes, document_path: str, token: str | None = "default", **extra: str) -> httpx.Response:
        sent = headers(document_path, **extra)
        if token is not None:
            sent.update(bearer(self.token if token == "default" else token))
        return self.http.post("/eventarc/firestore", content=body, headers=sent)

    def post_job(self, job, kind: str = "update", **extra: str) -> httpx.Response:
        return self.post(written(job_document(job, kind)), f"training_jobs/{job.task_id}", **extra)

    def rich_job(self):
        """A stored job with attempts, a lease, progress, metrics and cost: every value type a job holds."""
        service, store = self.runtime.jobs, self.runtime.backend.store
        job, _ = service.submit(JobSpec(tenant_id="team-a", custom_name="ev", wandb_tags=["a", "b"]),
                                Origin(source="slack", channel="C1", thread_ts="1.2"))
        now = utcnow()
        store.update(job.task_id, lambda j: claim(j, now, 600))
        store.update(job.task_id, lambda j: worker_started(j, 1, now, 60, "cuda:0 NVIDIA L4", 0))
        progress = Progress(epoch=1, total_epochs=job.progress.total_epochs, progress_percent=10.0,
                            message="Epoch 1", batch=3, batches=8, loss=0.5, eta_seconds=12.5)
        return store.update(job.task_id, lambda j: report_progress(j, 1, progress, {"mAP50": 0.25}, utcnow()),
                            kind="progress")


@pytest.fixture
def serve(tmp_path, issuer, cert_server):
    started = []

    def make(**overrides) -> Service:
        values = dict(LAXAI_HOME=tmp_path / f"home{len(started)}", LAXAI_API_TOKENS="t:team-a",
                      LAXAI_CHANGE_FEED="eventarc", EVENTARC_AUDIENCE=AUDIENCE, PUSH_AUDIENCE=f"{SERVICE_URL}/pubsub/push",
                      PUSH_SERVICE_ACCOUNT=SERVICE_ACCOUNT, OIDC_CERTS_URL=cert_server.url,
                      GOOGLE_CLOUD_PROJECT=GCP_PROJECT)
        values.update(overrides)
        runtime = create_runtime(Settings(**values), dispatch=False)
        service = Service(AppServer(runtime).__enter__(), issuer)
        started.append(service)
        return service

    yield make
    for service in started:
        service.subscription.stop()
        service.http.close()
        service.server.__exit__()


def test_a_written_event_reaches_the_listeners_as_the_job(serve):
    service = serve()
    job = service.rich_job()
    assert service.runtime._feed is None  # eventarc feed: the store's own feed is not followed
    updated = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    body = written(job_document(job, "progress", updated=updated))
    response = service.post(body, f"training_jobs/{job.task_id}")
    assert response.status_code == 204, response.text
    (event,) = service.received.events
    assert event.job == job and event.kind == "progress" and event.cursor == updated
    assert event.job.current_attempt.device == "cuda:0 NVIDIA L4" and event.job.metrics == {"mAP50": 0.25}


def test_the_json_form_of_the_event_data_is_read_too(serve):
    from google.events.cloud.firestore_v1.types import DocumentEventData

    service = serve()
    job = service.rich_job()
    body = DocumentEventData.to_json(DocumentEventData(value=job_document(job, "progress"))).encode()
    response = service.post(body, f"training_jobs/{job.task_id}", content_type="application/json")
    assert response.status_code == 204 and service.received.events[0].job == job


def test_repeated_and_out_of_order_events_are_delivered_once_in_version_order(serve):
    service = serve()
    job = service.rich_job()
    older = job.model_copy(update={"version": job.version - 1})
    newer = job.model_copy(update={"version": job.version + 1})
    for version in (job, job, older, newer, job):
        assert service.post_job(version).status_code == 204
    assert service.received.versions == [(job.task_id, job.version), (job.task_id, job.version + 1)]


def test_a_failing_listener_does_not_stop_the_others_or_fail_the_request(serve):
    service = serve()

    def broken(_: ChangeEvent) -> None:
        raise RuntimeError("listener bug")

    other = service.runtime.on_change(broken)
    late = Received()
    service.runtime.on_change(late)
    job = service.rich_job()
    assert service.post_job(job).status_code == 204
    assert service.received.versions == late.versions == [(job.task_id, job.version)]
    other.stop()


def test_a_delete_is_acknowledged_and_not_delivered(serve):
    service = serve()
    job = service.rich_job()
    response = service.post(written(None, before=job_document(job, "progress")), f"training_jobs/{job.task_id}")
    assert response.status_code == 204 and response.headers["X-LaxAI-Ignored"] == "no document"
    assert service.received.events == []


@pytest.mark.parametrize("case, reason", [
    ("garbage", "undecodable body"),
    ("truncated", "undecodable body"),
    ("empty", "no document"),
    ("json garbage", "undecodable body"),
    ("text/plain", "unsupported content type"),
    ("other type", "not a document written event"),
    ("other collection", "other collection"),
    ("not a job", "not a job"),
], ids=lambda v: v.replace(" ", "-"))
def test_undeliverable_events_are_acknowledged_without_errors(serve, case, reason):
    service = serve()
    job = service.rich_job()
    document = job_document(job, "progress")
    path = f"training_jobs/{job.task_id}"
    body, extra = written(document), {}
    if case == "garbage":
        body = b"\xff\x01\x02garbage\x00" * 10
    elif case == "truncated":
        body = body[: len(body) // 2]
    elif case == "empty":
        body = b""
    elif case == "json garbage":
        body, extra = b'{"value": {"fields": 7}}', {"content_type": "application/json"}
    elif case == "text/plain":
        extra = {"content_type": "text/plain"}
    elif case == "other type":
        extra = {"event_type": "google.cloud.firestore.document.v1.deleted"}
    elif case == "other collection":
        document.name = f"{DATABASE}/documents/locks/dispatcher"
        body = written(document)
    elif case == "not a job":
        document.fields["job"] = to_value({"task_id": job.task_id, "status": "nonsense"})
        body = written(document)
    response = service.post(body, path, **extra)
    assert response.status_code == 204, response.text
    assert response.headers["X-LaxAI-Ignored"] == reason
    assert service.received.events == []


def test_events_without_eventarcs_token_are_refused(serve, issuer, stranger):
    service = serve()
    job = service.rich_job()
    refused = {
        None: 401,
        issuer.token(f"{SERVICE_URL}/pubsub/push"): 401,  # a push token is not an Eventarc token
        stranger.token(AUDIENCE): 401,
        issuer.token(AUDIENCE, exp=int(datetime.now().timestamp()) - 60): 401,
        issuer.token(AUDIENCE, email="attacker@example.com"): 403,
    }
    for token, status in refused.items():
        response = service.post(written(job_document(job, "x")), f"training_jobs/{job.task_id}", token=token)
        assert response.status_code == status
        assert "detail" not in response.json() and len(response.text) < 40
    assert service.received.events == []


def test_without_an_audience_events_are_refused_unless_auth_is_off(serve):
    closed = serve(EVENTARC_AUDIENCE=None)
    job = closed.rich_job()
    assert closed.post_job(job, token=None).status_code == 403
    opened = serve(EVENTARC_AUDIENCE=None, LAXAI_PUSH_AUTH="none")
    job = opened.rich_job()
    assert opened.post_job(job, token=None).status_code == 204
    assert opened.received.versions == [(job.task_id, job.version)]


def test_with_the_watch_feed_events_are_acknowledged_and_dropped(serve):
    service = serve(LAXAI_CHANGE_FEED="watch")
    job = service.rich_job()
    deadline = time.monotonic() + 10  # the store's own feed delivers the job's changes
    while (not service.received.events or service.received.events[-1].job != job) and time.monotonic() < deadline:
        time.sleep(0.05)
    before = list(service.received.events)
    assert before and before[-1].job == job
    response = service.post_job(job.model_copy(update={"version": job.version + 5}))
    assert response.status_code == 204 and response.headers["X-LaxAI-Ignored"] == "change feed is not eventarc"
    assert service.received.events == before


@pytest.mark.gcp
def test_a_document_as_firestore_stores_it_decodes_to_the_stored_job(serve, firestore_client, clean_firestore):
    """The emulator's own bytes for a job document, wrapped as Eventarc wraps them."""
    from google.events.cloud.firestore_v1.types import Document

    from orchestrator.stores.firestore import FirestoreJobStore

    service = serve()
    store = FirestoreJobStore(firestore_client, "training_jobs")
    job = service.rich_job()
    stored, _ = store.create(job)
    stored = store.update(job.task_id, lambda j: j.model_copy(update={"updated_at": utcnow() + timedelta(seconds=1)}),
                          kind="progress")
    ref = firestore_client.collection("training_jobs").document(job.task_id)
    raw = firestore_client._firestore_api.get_document(request={"name": ref._document_path})
    document = Document.deserialize(type(raw).serialize(raw))
    response = service.post(written(document), f"training_jobs/{job.task_id}")
    assert response.status_code == 204
    (event,) = service.received.events
    assert event.job == stored and event.kind == "progress"
    assert event.cursor == raw.update_time

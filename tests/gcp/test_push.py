"""POST /pubsub/push and /tasks/tick over real HTTP: OIDC with real RS256 tokens, one pass per push.

The service runs in push mode with Cloud Run Jobs as its launcher, pointed at the
in-process fake (tests/fakes/fake_cloud_run.py), so a launch is a recorded RunJob.
Its dispatcher loop is left out (``only_pushes``): every launch here comes from a push
or a tick. Tokens are signed by ``TokenIssuer`` and verified against certificates the
service fetches from ``CertServer``, as it would from Google.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest

from orchestrator.config import Settings
from orchestrator.domain.job import EndReason, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import finish, worker_started
from orchestrator.launchers.cloudrun import CloudRunJobLauncher
from orchestrator.serve import create_runtime
from tests.fakes.fake_cloud_run import FakeCloudRun
from tests.gcp.support import SERVICE_ACCOUNT, AppServer, bearer
from tests.gcp_fixtures import GCP_PROJECT, gcp_backend_values
from tests.support import write_times

SERVICE_URL = "https://laxai-service-x7.a.run.app"
PUSH_AUDIENCE = f"{SERVICE_URL}/pubsub/push"
TICK_AUDIENCE = f"{SERVICE_URL}/tasks/tick"
API_TOKEN = "push-test-token"
TINY = {"training_params": {"epochs": 1}, "dataset": "synthetic:8"}


def envelope(task_id: str, message_id: str = "1001", attempt: int | None = 1, **attributes: str) -> dict:
    """What a Pub/Sub push subscription posts for a message published by PubSubJobQueue."""
    body = {
        "message": {
            "data": base64.b64encode(json.dumps({"task_id": task_id}).encode()).decode(),
            "attributes": attributes,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2025-01-01T00:00:00.000Z",
            "publish_time": "2025-01-01T00:00:00.000Z",
        },
        "subscription": f"projects/{GCP_PROJECT}/subscriptions/training-jobs-sub",
    }
    if attempt is not None:
        body["deliveryAttempt"] = attempt
    return body


class Service:
    """The running service, its fake Cloud Run, and a REST client."""

    def __init__(self, server: AppServer, fake: FakeCloudRun):
        self.server, self.fake, self.runtime = server, fake, server.runtime
        self.store = self.runtime.backend.store
        self.http = httpx.Client(base_url=server.url, timeout=60)

    def submit(self) -> str:
        response = self.http.post("/orchestrate", json=TINY, headers=bearer(API_TOKEN))
        assert response.status_code == 202, response.text
        return response.json()["task_id"]

    def push(self, body, token: str | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers.update(bearer(token))
        if isinstance(body, (bytes, str)):
            return self.http.post("/pubsub/push", content=body, headers={"Content-Type": "application/json", **headers})
        return self.http.post("/pubsub/push", json=body, headers=headers)

    def launched(self) -> list[tuple[str, str]]:
        """(TASK_ID, ATTEMPT) of every RunJob the fake got."""
        result = []
        for request in self.fake.run_requests:
            env = {var.name: var.value for var in request.overrides.container_overrides[0].env}
            result.append((env["TASK_ID"], env["ATTEMPT"]))
        return result


@pytest.fixture
def serve(tmp_path, issuer, cert_server, request):
    """serve(backend="local"|"gcp", **settings) -> a running Service, stopped after the test."""
    started = []

    def make(backend: str = "local", only_pushes: bool = True, **overrides) -> Service:
        values = dict(LAXAI_HOME=tmp_path / "home", LAXAI_API_TOKENS=f"{API_TOKEN}:team-a", LAXAI_DISPATCH="push",
                      DISPATCH_INTERVAL=3600, TASK_TIMEOUT=3600, PUSH_AUDIENCE=PUSH_AUDIENCE,
                      TICK_AUDIENCE=TICK_AUDIENCE, PUSH_SERVICE_ACCOUNT=SERVICE_ACCOUNT,
                      OIDC_CERTS_URL=cert_server.url, GOOGLE_CLOUD_PROJECT=GCP_PROJECT)
        if backend == "gcp":
            values.update(gcp_backend_values(request))
        values.update(overrides)
        settings = Settings(**values)
        fake = FakeCloudRun().start()
        launcher = CloudRunJobLauncher.from_settings(settings, channel=grpc.insecure_channel(fake.address))
        runtime = create_runtime(settings, launcher=launcher)
        if only_pushes:  # the loop would dispatch too; here only pushes and ticks do
            runtime.background = [s for s in runtime.background if s.name != "dispatcher"]
        server = AppServer(runtime).__enter__()
        service = Service(server, fake)
        started.append(service)
        return service

    yield make
    for service in started:
        service.http.close()
        service.server.__exit__()
        service.fake.stop()


# -- dispatching -------------------------------------------------------------------


@pytest.mark.gcp
def test_a_push_launches_the_job_once_and_acknowledges(serve, issuer):
    service = serve("gcp")
    task = service.submit()
    assert service.launched() == []  # submitted, not launched: nothing pulls in push mode
    response = service.push(envelope(task), issuer.token(PUSH_AUDIENCE))
    assert response.status_code == 204 and response.content == b""
    assert service.launched() == [(task, "1")]
    (request,) = service.fake.run_requests
    assert request.overrides.task_count == 1 and request.overrides.timeout.total_seconds() == 3600
    job = service.store.get(task)
    assert job.status is JobStatus.RUNNING and job.current_attempt.execution == service.fake.executions[0]


@pytest.mark.gcp
def test_the_same_envelope_pushed_concurrently_starts_the_job_once(serve, issuer):
    service = serve("gcp")
    task = service.submit()
    body, token = envelope(task, message_id="77"), issuer.token(PUSH_AUDIENCE)
    start = threading.Barrier(6)

    def deliver(_):
        start.wait()
        return service.push(body, token).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(deliver, range(6)))
    assert codes == [204] * 6
    assert service.launched() == [(task, "1")]
    assert len(service.store.get(task).attempts) == 1


@pytest.mark.gcp
def test_a_job_over_the_cap_stays_queued_until_a_slot_frees(serve, issuer):
    service = serve("gcp", MAX_CONCURRENT_JOBS=1)
    token = issuer.token(PUSH_AUDIENCE)
    first, second = service.submit(), service.submit()
    assert service.push(envelope(first), token).status_code == 204
    assert service.push(envelope(second), token).status_code == 204  # acknowledged, not held
    assert service.launched() == [(first, "1")]
    assert service.store.get(second).status is JobStatus.QUEUED

    now, rates = utcnow(), service.runtime.settings.rates()
    service.store.update(first, lambda j: worker_started(j, 1, now, 60, "cpu", 0))
    service.store.update(first, lambda j: finish(j, 1, EndReason.COMPLETED, utcnow(), rates))
    tick = service.http.post("/tasks/tick", headers=bearer(issuer.token(TICK_AUDIENCE)))
    assert tick.status_code == 200 and tick.json() == {"ran": True, "launched": [second]}
    assert service.launched() == [(first, "1"), (second, "1")]


@pytest.mark.gcp
def test_the_pubsub_emulator_pushing_to_the_endpoint_launches_the_job(serve, pubsub_names):
    # The emulator signs nothing, so this is the local set-up: no audience, LAXAI_PUSH_AUTH=none.
    service = serve("gcp", PUSH_AUDIENCE=None, LAXAI_PUSH_AUTH="none")
    queue = service.runtime.backend.queue
    push_subscription = queue.subscription + "-push"
    queue.subscriber.create_subscription(request={
        "name": push_subscription, "topic": queue.topic, "ack_deadline_seconds": 10,
        "push_config": {"push_endpoint": f"{service.server.url}/pubsub/push"},
    })
    try:
        task = service.submit()  # published by the service; the emulator pushes it to us
        deadline = time.monotonic() + 30
        while not service.launched() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.launched() == [(task, "1")]
        assert service.store.get(task).status is JobStatus.RUNNING
    finally:
        queue.subscriber.delete_subscription(request={"subscription": push_subscription})


def test_tick_runs_one_pass_for_cloud_scheduler(serve, issuer):
    service = serve()
    task = service.submit()
    response = service.http.post("/tasks/tick", headers=bearer(issuer.token(TICK_AUDIENCE)))
    assert response.status_code == 200 and response.json() == {"ran": True, "launched": [task]}
    again = service.http.post("/tasks/tick", headers=bearer(issuer.token(TICK_AUDIENCE)))
    assert again.json() == {"ran": True, "launched": []}
    assert service.launched() == [(task, "1")]


def test_with_a_write_gap_a_push_still_launches_its_fresh_job(serve, issuer):
    """The pass a push runs leaves a job created a moment ago (Firestore: ~1 write/s per document);
    the handler waits out the gap and passes again, and the launch record keeps the gap too."""
    gap = 0.5
    service = serve(STORE_WRITE_GAP=gap)
    db = service.runtime.settings.db_path
    write_times.install(db)
    task = service.submit()
    started = time.monotonic()
    assert service.push(envelope(task), issuer.token(PUSH_AUDIENCE)).status_code == 204
    assert service.launched() == [(task, "1")]  # launched by this push, not left for a later one
    assert time.monotonic() - started < 3 * gap + 1
    stamped = write_times.writes(db, task)
    assert [kind for kind, _ in stamped] == ["created", "status:running", "launched"]
    assert all(between >= gap for _, _, between in write_times.gaps(stamped)), write_times.gaps(stamped)


def test_push_and_the_background_loop_together_still_launch_once(serve, issuer):
    service = serve(only_pushes=False, DISPATCH_INTERVAL=0.05, MAX_JOBS_PER_TENANT=3)
    tasks = [service.submit() for _ in range(3)]
    token = issuer.token(PUSH_AUDIENCE)
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda t: service.push(envelope(t), token).status_code, tasks * 2))
    assert codes == [204] * 6
    deadline = time.monotonic() + 10
    while len(service.launched()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(service.launched()) == sorted((t, "1") for t in tasks)


# -- malformed envelopes -------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"not json",
    b"\xff\xfe\x00",
    b"[" * 5000 + b"]" * 5000,
    {"subscription": "s"},
    {"message": "text"},
    {"message": {"data": "%%% not base64 %%%", "messageId": "1"}},
    {"message": {"data": base64.b64encode(b"not json").decode(), "messageId": "2"}},
    {"message": {"data": base64.b64encode(b'{"other": 1}').decode(), "messageId": "3"}},
    {"message": {"data": base64.b64encode(b'{"task_id": 5}').decode(), "messageId": "4"}},
], ids=["text", "binary", "deep", "no-message", "message-not-object", "bad-base64", "data-not-json",
        "no-task-id", "task-id-not-text"])
def test_a_malformed_envelope_is_dropped_with_204(serve, issuer, body):
    service = serve()
    task = service.submit()
    response = service.push(body, issuer.token(PUSH_AUDIENCE))
    assert response.status_code == 204
    assert response.headers["X-LaxAI-Ignored"] == "malformed envelope"
    assert service.launched() == [] and service.store.get(task).status is JobStatus.QUEUED


def test_a_task_id_in_the_attributes_is_enough(serve, issuer):
    service = serve()
    task = service.submit()
    body = {"message": {"attributes": {"task_id": task}, "messageId": "5"}, "subscription": "s"}
    assert service.push(body, issuer.token(PUSH_AUDIENCE)).status_code == 204
    assert service.launched() == [(task, "1")]


# -- who may push -----------------------------------------------------------------------


def refused_tokens(issuer, stranger) -> dict[str, tuple[int, str | None]]:
    now = int(time.time())
    return {
        "no token": (401, None),
        "not a jwt": (401, "abc.def"),
        "garbage": (401, "x" * 40),
        "wrong audience": (401, issuer.token(f"{SERVICE_URL}/other")),
        "tick audience": (401, issuer.token(TICK_AUDIENCE)),
        "expired": (401, issuer.token(PUSH_AUDIENCE, iat=now - 7200, exp=now - 3600)),
        "not yet valid": (401, issuer.token(PUSH_AUDIENCE, iat=now + 3600, exp=now + 7200)),
        "no expiry": (401, issuer.token(PUSH_AUDIENCE, exp=None)),
        "not google": (401, issuer.token(PUSH_AUDIENCE, iss="https://evil.example.com")),
        "unknown key": (401, stranger.token(PUSH_AUDIENCE)),
        "forged with a known key id": (401, stranger.token(PUSH_AUDIENCE, kid=issuer.kid)),
        "unsigned": (401, unsigned_token(issuer, PUSH_AUDIENCE)),
        "another account": (403, issuer.token(PUSH_AUDIENCE, email="someone@gmail.com")),
        "unverified email": (403, issuer.token(PUSH_AUDIENCE, email_verified=False)),
        "no email": (403, issuer.token(PUSH_AUDIENCE, email=None)),
    }


def unsigned_token(issuer, audience: str) -> str:
    """alg=none with the right claims."""
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': issuer.kid})}.{part(issuer.claims(audience))}."


def test_pushes_without_the_right_token_are_refused_without_details(serve, issuer, stranger):
    service = serve()
    task = service.submit()
    for name, (status, token) in refused_tokens(issuer, stranger).items():
        response = service.push(envelope(task), token)
        assert response.status_code == status, name
        assert response.json() == {"error": "unauthorized" if status == 401 else "forbidden"}, name
    other_scheme = service.push(envelope(task), Authorization=f"Basic {issuer.token(PUSH_AUDIENCE)}")
    assert other_scheme.status_code == 401
    assert service.launched() == [] and service.store.get(task).status is JobStatus.QUEUED
    tick = service.http.post("/tasks/tick", headers=bearer(issuer.token(PUSH_AUDIENCE)))
    assert tick.status_code == 401 and service.launched() == []


def test_certificates_are_fetched_once_and_cached(serve, issuer, cert_server):
    service = serve()
    for _ in range(3):
        assert service.push(envelope(service.submit()), issuer.token(PUSH_AUDIENCE)).status_code == 204
    assert cert_server.fetches == 1


def test_without_an_audience_pushes_are_refused_unless_auth_is_off(serve, issuer):
    closed = serve(PUSH_AUDIENCE=None)
    task = closed.submit()
    assert closed.push(envelope(task), issuer.token(PUSH_AUDIENCE)).status_code == 403
    assert closed.push(envelope(task)).status_code == 403
    assert closed.launched() == []


def test_without_an_audience_and_auth_off_pushes_need_no_token(tmp_path, serve):
    opened = serve(PUSH_AUDIENCE=None, LAXAI_PUSH_AUTH="none", LAXAI_HOME=tmp_path / "other-home")
    task = opened.submit()
    assert opened.push(envelope(task)).status_code == 204
    assert opened.launched() == [(task, "1")]


def test_a_set_audience_is_checked_even_with_auth_off(serve, issuer):
    service = serve(LAXAI_PUSH_AUTH="none")
    task = service.submit()
    assert service.push(envelope(task)).status_code == 401
    assert service.push(envelope(task), issuer.token(PUSH_AUDIENCE)).status_code == 204


def test_without_a_service_account_every_token_is_refused(serve, issuer):
    service = serve(PUSH_SERVICE_ACCOUNT=None)
    assert service.push(envelope(service.submit()), issuer.token(PUSH_AUDIENCE)).status_code == 403
    assert service.launched() == []


def test_several_audiences_may_be_accepted(serve, issuer):
    service = serve(PUSH_AUDIENCE=f"{SERVICE_URL}, {PUSH_AUDIENCE}")
    assert service.push(envelope(service.submit()), issuer.token(SERVICE_URL)).status_code == 204
    assert len(service.launched()) == 1


def test_unreachable_certificates_answer_503(serve, issuer):
    service = serve(OIDC_CERTS_URL="http://127.0.0.1:9/certs")
    response = service.push(envelope(service.submit()), issuer.token(PUSH_AUDIENCE))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert service.launched() == []


def test_push_endpoints_are_not_in_the_openapi_spec(serve):
    paths = serve().http.get("/openapi.json").json()["paths"]
    assert not {"/pubsub/push", "/tasks/tick", "/eventarc/firestore"} & set(paths)


def test_the_deploy_wiring_names_these_endpoints_and_settings():
    """deploy.sh points Pub/Sub and Eventarc at these paths and sets these settings on the service."""
    import re
    from pathlib import Path

    from orchestrator.api import eventarc, push

    script = (Path(__file__).resolve().parents[2] / "deploy.sh").read_text()
    assert '--push-endpoint="$URL/pubsub/push"' in script
    assert '--push-auth-token-audience="$URL/pubsub/push"' in script
    assert "--destination-run-path=/eventarc/firestore" in script
    assert '--uri="$URL/tasks/tick"' in script and '--oidc-token-audience="$URL/tasks/tick"' in script
    # "|" separates: audiences hold commas and the account an "@" (tests/deploy runs it against a fake gcloud)
    (assignments,) = re.findall(r'--update-env-vars="\^\|\^([^"]+)"', script)
    names = {pair.split("=", 1)[0] for pair in assignments.split("|")}
    assert names == {"PUSH_AUDIENCE", "PUSH_SERVICE_ACCOUNT", "EVENTARC_AUDIENCE", "TICK_AUDIENCE"}
    assert names <= set(Settings.model_fields)
    routes = {route.path for module in (push, eventarc) for route in module.router.routes}
    assert routes == {"/pubsub/push", "/tasks/tick", "/eventarc/firestore"}

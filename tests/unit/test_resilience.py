"""Start and stay up honestly: failures injected into launches, the dispatcher's loop and service threads.

Real parts: a SQLite store, the real Dispatcher loop on its thread, the REST app with its
lifespan (background services started), and ``laxai serve`` as a subprocess for the
start-up refusal. Only the launcher is a test double, and it fails on purpose.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from google.auth.exceptions import DefaultCredentialsError

from orchestrator.api.app import create_app
from orchestrator.backends import gpu_types_available, open_backend
from orchestrator.config import load_settings
from orchestrator.dispatcher import Dispatcher
from orchestrator.domain.job import EndReason, Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.launchers.base import Launcher
from orchestrator.serve import ServiceThread
from orchestrator.serve import StartupError, check_launcher, create_runtime
from orchestrator.service import JobService

LAXAI = str(Path(sys.executable).with_name("laxai"))
TOKEN = "resilience-token-1234"


class FlakyLauncher(Launcher):
    """Launches nothing real; raises ``launch_error`` on launch and fails ``reap`` while told to."""

    def __init__(self, launch_error: Exception | None = None, reap_failures: int = 0):
        self.launch_error = launch_error
        self.reap_failures = reap_failures  # -1: for ever
        self.launched: list[tuple[str, int]] = []
        self.reaps = 0

    def launch(self, job, attempt):
        if self.launch_error is not None:
            raise self.launch_error
        self.launched.append((job.task_id, attempt))
        return f"fake:{job.task_id}:{attempt}"

    def stop(self, execution):
        pass

    def reap(self):
        self.reaps += 1
        if self.reap_failures != 0:
            self.reap_failures -= 1
            raise RuntimeError("the process table is unreadable")


def settings_for(tmp_path, **values):
    base = {"LAXAI_HOME": tmp_path / "home", "LAXAI_API_TOKENS": f"{TOKEN}:t1", "DISPATCH_INTERVAL": 0.05}
    return load_settings(**{**base, **values})


def submit(service: JobService, **spec) -> str:
    job, _ = service.submit(JobSpec(tenant_id="t1", **spec), Origin())
    return job.task_id


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- a job that cannot be launched -----------------------------------------------------------


def test_a_launcher_that_raises_anything_fails_the_job_after_max_launch_attempts(tmp_path):
    # What `laxai serve --backend gcp` without credentials used to do: DefaultCredentialsError is
    # neither a LaunchError nor an OSError, escaped the pass, and left the job claimed for ever.
    launcher = FlakyLauncher(DefaultCredentialsError("Your default credentials were not found."))
    backend = open_backend(settings_for(tmp_path, MAX_LAUNCH_ATTEMPTS=3, MAX_RECOVERIES=0), launcher)
    try:
        service, dispatcher = JobService(backend), Dispatcher(backend)
        task = submit(service)
        for tries in (1, 2):
            dispatcher.tick()
            job = backend.store.get(task)
            assert job.status is JobStatus.QUEUED, job.error
            assert len(job.attempts) == tries and job.recoveries == 0  # no execution was lost
        dispatcher.tick()
        job = backend.store.get(task)
        assert job.status is JobStatus.FAILED
        assert job.error.reason == "launch_failed"
        assert "3 launches failed in a row (MAX_LAUNCH_ATTEMPTS=3)" in job.error.message
        assert "DefaultCredentialsError: Your default credentials were not found." in job.error.message
        assert [a.end_reason for a in job.attempts] == [EndReason.LAUNCH_FAILED] * 3
        dispatcher.tick()
        assert len(backend.store.get(task).attempts) == 3  # finished: never tried again
    finally:
        backend.close()


def test_a_launch_that_recovers_in_time_runs_the_job(tmp_path):
    launcher = FlakyLauncher(RuntimeError("quota exceeded"))
    backend = open_backend(settings_for(tmp_path, MAX_LAUNCH_ATTEMPTS=2), launcher)
    try:
        service, dispatcher = JobService(backend), Dispatcher(backend)
        task = submit(service)
        dispatcher.tick()
        assert backend.store.get(task).status is JobStatus.QUEUED
        launcher.launch_error = None
        dispatcher.tick()
        job = backend.store.get(task)
        assert job.status is JobStatus.RUNNING and launcher.launched == [(task, 2)]
        assert job.current_attempt.execution == f"fake:{task}:2"
    finally:
        backend.close()


# -- the dispatcher's loop ---------------------------------------------------------------------


def test_a_loop_pass_that_raises_is_logged_backs_off_and_the_loop_goes_on(tmp_path, caplog):
    launcher = FlakyLauncher(reap_failures=3)  # reap ran outside any try: it used to kill the thread
    backend = open_backend(settings_for(tmp_path, LOOP_FAILURE_LIMIT=10), launcher)
    dispatcher = Dispatcher(backend)
    try:
        dispatcher.start()
        assert wait_until(lambda: launcher.reaps >= 5)
        assert dispatcher._thread.is_alive()
        assert dispatcher.health.failures == 0 and dispatcher.health.problem() is None  # recovered
        assert "dispatcher pass failed (3 in a row)" in caplog.text
        task = submit(JobService(backend))  # and it still dispatches
        assert wait_until(lambda: (task, 1) in launcher.launched)
    finally:
        dispatcher.stop()
        backend.close()


def test_the_back_off_doubles_up_to_a_cap(tmp_path):
    backend = open_backend(settings_for(tmp_path, DISPATCH_INTERVAL=1.0), FlakyLauncher())
    try:
        health = Dispatcher(backend).health
        waits = [health.failed(RuntimeError("down")) for _ in range(8)]
        assert waits[:4] == [1.0, 2.0, 4.0, 8.0] and waits[-1] == 30.0
        health.succeeded()
        assert health.failed(RuntimeError("down")) == 1.0
    finally:
        backend.close()


def test_a_loop_that_keeps_failing_makes_healthz_503_naming_it_until_it_recovers(tmp_path):
    launcher = FlakyLauncher(reap_failures=-1)
    settings = settings_for(tmp_path, LOOP_FAILURE_LIMIT=3)
    runtime = create_runtime(settings, launcher=launcher)
    runtime.loops[0].interval = 0.01  # back off briefly, so the test is quick
    with TestClient(create_app(runtime, with_extensions=False)) as client:
        assert wait_until(lambda: client.get("/healthz").status_code == 503)
        body = client.get("/healthz").json()
        assert body["status"] == "unhealthy" and body["backend"] == "local"
        assert any(p.startswith("dispatcher: ") and "passes failed in a row" in p
                   and "RuntimeError: the process table is unreadable" in p for p in body["problems"]), body
        launcher.reap_failures = 0
        assert wait_until(lambda: client.get("/healthz").status_code == 200)
        assert client.get("/healthz").json() == {"status": "ok", "backend": "local"}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
def test_a_background_thread_that_dies_makes_healthz_503_naming_it(tmp_path):
    runtime = create_runtime(settings_for(tmp_path), launcher=FlakyLauncher(), dispatch=False)
    stop = threading.Event()

    def loop() -> None:
        stop.wait(0.2)
        raise KeyError("state lost")

    runtime.add_service("flaky-feed", lambda: threading.Thread(target=loop, name="flaky-feed-loop").start(), stop.set)
    with TestClient(create_app(runtime, with_extensions=False)) as client:
        assert client.get("/healthz").status_code == 200
        assert wait_until(lambda: client.get("/healthz").status_code == 503)
        assert client.get("/healthz").json()["problems"] == [
            "flaky-feed: thread flaky-feed-loop died: KeyError: 'state lost'"]


# -- refusing to start without what Cloud Run needs --------------------------------------------


def service_account_file(tmp_path: Path) -> Path:
    """A syntactically real service-account key (never used to call Google)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "laxai-test", "private_key_id": "k1", "private_key": pem,
        "client_email": "laxai-service@laxai-test.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token"}))
    return path


def test_serve_on_gcp_with_the_cloud_run_launcher_and_no_credentials_refuses_to_start(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LAXAI_HOME": str(tmp_path / "home"),
           "LAXAI_API_TOKENS": f"{TOKEN}:t1", "GOOGLE_CLOUD_PROJECT": "laxai-local",
           "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9", "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
           "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "NO_GCE_CHECK": "True"}
    done = subprocess.run([LAXAI, "serve", "--backend", "gcp", "--port", "9"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert "laxai serve cannot start" in said
    assert "Google credentials" in said and "DefaultCredentialsError" in said
    assert "ARTIFACT_BUCKET: unset" in said
    assert "LAXAI_LAUNCHER=local" in said  # the one-laptop alternative
    assert "Traceback" not in said and "Uvicorn running" not in said


def test_the_start_check_names_only_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_file(tmp_path)))
    settings = settings_for(tmp_path, LAXAI_BACKEND="gcp")
    with pytest.raises(StartupError) as refused:
        check_launcher(settings)
    assert "ARTIFACT_BUCKET" in str(refused.value) and "credentials" not in str(refused.value)
    check_launcher(settings_for(tmp_path, LAXAI_BACKEND="gcp", ARTIFACT_BUCKET="laxai-artifacts"))  # ready
    check_launcher(settings_for(tmp_path, LAXAI_BACKEND="gcp", LAXAI_LAUNCHER="local"))  # nothing to check


# -- honest GPU types --------------------------------------------------------------------------


def test_each_launcher_offers_the_gpu_types_it_can_run(tmp_path):
    assert gpu_types_available(settings_for(tmp_path)) == ("nvidia-l4", "cpu")
    assert gpu_types_available(settings_for(tmp_path, LAXAI_BACKEND="gcp")) == ("nvidia-l4",)
    assert gpu_types_available(settings_for(tmp_path, LAXAI_BACKEND="gcp", LAXAI_LAUNCHER="local")) == \
        ("nvidia-l4", "cpu")
    assert gpu_types_available(settings_for(tmp_path, GPU_TYPE="cpu")) == ("cpu",)
    assert gpu_types_available(settings_for(tmp_path, GPU_TYPES_AVAILABLE="cpu")) == ("cpu",)


@pytest.mark.parametrize(("values", "asked", "available"), [
    ({"LAXAI_LAUNCHER": "cloudrun"}, "cpu", "nvidia-l4"),  # a Cloud Run job has its one GPU type
    ({"GPU_TYPES_AVAILABLE": "cpu"}, "nvidia-l4", "cpu"),
])
def test_a_gpu_type_this_deployment_cannot_run_is_refused_with_422_listing_what_is(tmp_path, values, asked,
                                                                                    available):
    import httpx

    with ServiceThread(settings_for(tmp_path, **values), dispatch=False) as svc:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        refused = httpx.post(f"{svc.url}/orchestrate", json={"gpu_type": asked}, headers=headers)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert [d["field"] for d in detail] == ["gpu_type"]
        assert detail[0]["message"] == f"{asked!r} is not available on this deployment; available: {available}"
        assert httpx.get(f"{svc.url}/jobs", headers=headers).json()["jobs"] == []  # nothing stored
        unknown = httpx.post(f"{svc.url}/orchestrate", json={"gpu_type": "nvidia-h100-80gb"}, headers=headers)
        assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "gpu_type"
        accepted = httpx.post(f"{svc.url}/orchestrate", json={"gpu_type": available}, headers=headers)
        assert accepted.status_code == 202, accepted.text

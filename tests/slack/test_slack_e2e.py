"""End to end: ``laxai serve`` as a subprocess, real signed Slack requests, real tiny YOLO training.

The service's WebClient points at the fake Slack Web API; workers train real
models on the CPU. These are slow (minutes): marked ``slow``.

Every test runs on both backends: ``[local]`` (SQLite, worker subprocesses) and
``[gcp]``: ``laxai serve --backend gcp`` on the Firestore and Pub/Sub emulators with
``LAXAI_LAUNCHER=local`` (workers are local subprocesses that write to Firestore)
and the Firestore on_snapshot change feed (``LAXAI_CHANGE_FEED=watch``). Each gcp
service gets a project of its own, so its Firestore database and Pub/Sub names are
shared with no other service.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from orchestrator.domain.status import JobStatus
from orchestrator.stores.base import JobStore
from tests import emulators
from tests.fakes.fake_slack import FakeSlack
from tests.support.serve import ServeProcess, kill_workers

from tests.slack.backends import BACKENDS, fresh_gcp_env
from tests.slack.slack_env import ADMIN, ALICE, BOB, BOT_TOKEN, CHANNEL, SIGNING_SECRET, TEAM, slack_env
from tests.slack.slack_requests import SlackSender

pytestmark = pytest.mark.slow

TINY = "epochs=2 imgsz=64 dataset=synthetic:16 arch=yolov8n"
API_TOKEN = "e2e-api-token-123456"
ACK_LIMIT = 3.0
RUN_TIMEOUT = 300.0


class Service:
    """``laxai serve`` plus what a test needs to talk to it and look inside."""

    def __init__(self, serve: ServeProcess, fake: FakeSlack):
        self.serve, self.fake = serve, fake
        self.sender = SlackSender(serve.url, SIGNING_SECRET, team_id=TEAM)
        self.api = httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
        self.store = open_store(serve)

    def close(self) -> None:
        self.sender.close()
        self.api.close()
        self.store.close()

    def jobs(self):
        return self.store.list(limit=1000)

    def job(self, task_id):
        return self.store.get(task_id)

    def submit(self, text: str, user: str = ALICE):
        before = {j.task_id for j in self.jobs()}
        sent = self.sender.command(text, user=user)
        assert sent.status == 200 and sent.seconds < ACK_LIMIT, (sent.status, sent.seconds, sent.response.text)
        assert "Queued" in sent.text, sent.text
        (job,) = [j for j in self.jobs() if j.task_id not in before]
        return job

    def posted(self, task_id, key, timeout=RUN_TIMEOUT):
        return self.fake.wait_for(lambda: self.fake.by_metadata(task_id, key), timeout=timeout,
                                  what=f"{key} of {task_id[:8]}")[0]

    def card(self, task_id):
        card = self.posted(task_id, "card", timeout=30)
        return self.fake.message(card["channel"], card["ts"])

    def wait_card(self, task_id, predicate, timeout=60.0):
        return self.fake.wait_for(lambda: (lambda c: c if predicate(c) else None)(self.card(task_id)),
                                  timeout=timeout, what=f"card of {task_id[:8]}")

    def wait_status(self, task_id, statuses, timeout=RUN_TIMEOUT):
        def reached():
            job = self.job(task_id)  # one store read a poll (on gcp, a Firestore read on the emulator)
            return job if job.status in statuses else None

        return self.fake.wait_for(reached, timeout=timeout, what=f"{task_id[:8]} to reach {statuses}")


def keys_of(fake, task_id):
    return sorted(m["metadata"]["event_payload"]["key"] for m in fake.by_metadata(task_id))


def assert_exactly_once(fake, task_id):
    keys = keys_of(fake, task_id)
    assert len(keys) == len(set(keys)), f"{task_id[:8]} posted twice: {keys}"


def has_button(action_id):
    return lambda card: any(e.get("action_id") == action_id
                            for b in card.get("blocks") or [] for e in b.get("elements") or [])


def open_store(serve: ServeProcess) -> JobStore:
    """The store ``serve`` keeps its jobs in, opened from this process as another process would."""
    if serve.env.get("LAXAI_BACKEND") == "gcp":
        from google.cloud import firestore

        from orchestrator.stores.firestore import FirestoreJobStore

        client = firestore.Client(project=serve.env["GOOGLE_CLOUD_PROJECT"])
        return FirestoreJobStore(client, serve.env.get("FIRESTORE_COLLECTION", "training_jobs"), close_client=True)
    from orchestrator.stores.sqlite import SqliteJobStore

    return SqliteJobStore(serve.home / "laxai.db")


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this module's services; for gcp, the (session's) emulators are running."""
    if request.param == "gcp":
        request.getfixturevalue("firestore_emulator")
        request.getfixturevalue("pubsub_emulator")
    return request.param


def start_serve(tmp: Path, fake: FakeSlack, name: str, backend: str, **extra: str) -> ServeProcess:
    """``laxai serve --backend <backend>`` with Slack on ``fake``; gcp in a fresh project on the emulators."""
    home = tmp / f"home-{name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LAXAI_"))}
    env.update(slack_env(fake))
    settings = {
        "YOLO_DEVICE": "cpu", "GPU_TYPE": "nvidia-l4",
        "MAX_CONCURRENT_JOBS": "2", "MAX_JOBS_PER_TENANT": "2", "PROGRESS_INTERVAL": "0.5",
        "DISPATCH_INTERVAL": "0.5",
        **(fresh_gcp_env("laxai-e2e") if backend == "gcp" else {}),
        **extra,
    }
    serve = ServeProcess(home, token=API_TOKEN, tenant=TEAM, serve_args=("--backend", backend, "--log-level", "info"),
                         base_env=env, extra_env=settings, log_dir=tmp / f"logs-{name}")
    try:
        serve.start()
    except BaseException:
        stop_serve(serve)
        raise
    return serve


def stop_serve(serve: ServeProcess) -> None:
    """Stop the service and any worker it left; empty its Firestore project (gcp)."""
    serve.stop()
    kill_workers(serve.home)
    if serve.env.get("LAXAI_BACKEND") == "gcp":
        emulators.clear_firestore(serve.env["FIRESTORE_EMULATOR_HOST"], serve.env["GOOGLE_CLOUD_PROJECT"])


def assert_no_secrets(serve: ServeProcess) -> None:
    """Neither the service's output nor any worker log holds the bot token, signing secret or API token."""
    output = serve.output()
    assert output, "no server output captured"
    worker_logs = sorted((serve.home / "logs").glob("*.log"))
    assert worker_logs, "no worker logs captured"
    texts = [output] + [path.read_text(errors="replace") for path in worker_logs]
    for secret in (BOT_TOKEN, SIGNING_SECRET, API_TOKEN):
        assert all(secret not in text for text in texts), "a secret reached a log"


@pytest.fixture(scope="module")
def shared(tmp_path_factory, backend):
    """One fake Slack and one ``laxai serve`` (per backend) for the tests that don't restart it."""
    tmp = tmp_path_factory.mktemp(f"slack-e2e-{backend}")
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        serve = start_serve(tmp, fake, "shared", backend)
        service = Service(serve, fake)
        try:
            yield service
        finally:
            service.close()
            stop_serve(serve)
            assert_no_secrets(serve)


def test_train_command_to_completed_thread(shared):
    sent = shared.sender.command(TINY + ' name="e2e run"')
    assert sent.status == 200 and sent.seconds < ACK_LIMIT
    assert sent.json()["response_type"] == "ephemeral" and "Queued" in sent.text
    (job,) = [j for j in shared.jobs() if j.spec.custom_name == "e2e run"]

    card = shared.card(job.task_id)
    assert card["channel"] == CHANNEL and card["thread_ts"] is None
    final = shared.posted(job.task_id, "final")
    done = shared.job(job.task_id)
    assert done.status is JobStatus.COMPLETED, done.error
    text = final["text"] + json.dumps(final["blocks"])
    assert "Completed" in text and "mAP50-95" in text and "Cost" in text and "nvidia-l4" in text
    assert done.artifacts.registry_name and done.artifacts.registry_name in text
    started = shared.posted(job.task_id, "started", timeout=5)
    assert "Started" in started["text"]
    for reply in (started, final):
        assert reply["thread_ts"] == card["ts"]
    final_card = shared.wait_card(job.task_id, lambda c: "Completed" in json.dumps(c["blocks"]))
    assert has_button("laxai_retry")(final_card) and not has_button("laxai_cancel")(final_card)
    assert_exactly_once(shared.fake, job.task_id)
    # Its training curves follow the final reply in the thread: a PNG of both epochs, uploaded with
    # the external upload flow (files.getUploadURLExternal, the upload URL, files.completeUploadExternal).
    (upload,) = shared.fake.wait_for(lambda: shared.fake.shared_files(CHANNEL, card["ts"]), timeout=60,
                                     what="the curves in the thread")
    image = Image.open(io.BytesIO(upload["data"]))
    assert image.format == "PNG" and image.text["Epochs"] == "2" and len(upload["data"]) < 200_000
    assert len(set(image.convert("L").getdata())) > 10  # not blank
    assert upload["filename"] == f"laxai-curves-{job.task_id}.png" and "2 epochs" in upload["comment"]
    assert float(upload["message_ts"]) > float(final["ts"])


def test_bad_text_is_refused_with_the_field_named_and_nothing_is_created(shared):
    before = shared.api.get("/jobs", params={"limit": 500}).json()["jobs"]
    for text, field in (("epochs=abc", "epochs"), ("epoch=3", "epoch"), ("arch=resnet", "arch")):
        sent = shared.sender.command(text)
        assert sent.status == 200 and sent.seconds < ACK_LIMIT
        assert f"*{field}*" in sent.text and "Nothing was submitted" in sent.text
    assert shared.api.get("/jobs", params={"limit": 500}).json()["jobs"] == before


def test_forged_and_stale_requests_get_401(shared):
    body = shared.sender.command_body("epochs=1")
    before = len(shared.jobs())
    assert shared.sender.post(body, secret="forged-secret").status == 401
    assert shared.sender.post(body, timestamp=int(time.time()) - 6 * 60).status == 401
    assert len(shared.jobs()) == before


def test_modal_opens_refuses_bad_values_and_submits(shared):
    opened = len(shared.fake.views)
    sent = shared.sender.command("")
    assert sent.status == 200 and sent.seconds < ACK_LIMIT
    shared.fake.wait_for(lambda: len(shared.fake.views) > opened, timeout=5)
    view = shared.fake.views[-1]
    assert shared.fake.calls_to("views.open", ok=True)

    bad = shared.sender.submit_view(view, {"epochs": "0"})
    assert bad.json()["response_action"] == "errors" and "epochs" in bad.json()["errors"]
    before = {j.task_id for j in shared.jobs()}
    good = shared.sender.submit_view(view, {"epochs": "1", "imgsz": "64", "dataset": "synthetic:8",
                                           "arch": "yolov8n", "name": "from the form"})
    assert good.status == 200 and not good.response.content
    (job,) = [j for j in shared.jobs() if j.task_id not in before]
    assert job.spec.custom_name == "from the form" and job.origin.channel == CHANNEL
    shared.posted(job.task_id, "final")
    assert shared.wait_status(job.task_id, {JobStatus.COMPLETED}).status is JobStatus.COMPLETED


def test_cancel_by_others_is_refused_cancel_by_submitter_works_and_retry_links(shared):
    job = shared.submit("epochs=200 imgsz=64 dataset=synthetic:16 arch=yolov8n name=long", user=ALICE)
    shared.posted(job.task_id, "started")
    card = shared.card(job.task_id)

    ephemerals = len(shared.fake.ephemerals)
    refused = shared.sender.click(card, "laxai_cancel", user=BOB)
    assert refused.status == 200 and refused.seconds < ACK_LIMIT
    note = shared.fake.wait_for(lambda: shared.fake.ephemerals[ephemerals:], timeout=5)[0]
    assert note["user"] == BOB and "Only <@U0ALICE>" in note["text"]
    time.sleep(1.0)
    assert shared.job(job.task_id).status is JobStatus.RUNNING and shared.job(job.task_id).cancel is None

    for _ in range(2):  # a double click
        assert shared.sender.click(card, "laxai_cancel", user=ALICE).status == 200
    shared.wait_status(job.task_id, {JobStatus.CANCELLED}, timeout=120)
    final = shared.posted(job.task_id, "final", timeout=60)
    assert "Cancelled* by <@U0ALICE>" in json.dumps(final["blocks"]) and final["thread_ts"] == card["ts"]
    assert shared.job(job.task_id).cancel.by == ALICE

    card = shared.wait_card(job.task_id, has_button("laxai_retry"))
    clicks = [shared.sender.click(card, "laxai_retry", user=ADMIN) for _ in range(2)]  # Bob may not: an admin may
    assert all(c.status == 200 and c.seconds < ACK_LIMIT for c in clicks)
    retries = [j for j in shared.jobs() if j.retry_of == job.task_id]
    assert len(retries) == 1, "a double click made two jobs"
    retry = retries[0]
    retry_card = shared.card(retry.task_id)
    assert retry_card["thread_ts"] == card["ts"]  # announced in the original's thread
    assert "retry of" in json.dumps(retry_card["blocks"])
    shared.wait_card(job.task_id, lambda c: "retried as" in json.dumps(c["blocks"]))
    # Stop the retry too (its submitter is the admin now), so the module's other tests get the slots.
    shared.posted(retry.task_id, "started")
    assert shared.sender.click(shared.card(retry.task_id), "laxai_cancel", user=ADMIN).status == 200
    shared.posted(retry.task_id, "final", timeout=120)
    for task_id in (job.task_id, retry.task_id):
        assert_exactly_once(shared.fake, task_id)


def test_a_restarted_service_posts_nothing_twice(tmp_path, backend):
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        serve = start_serve(tmp_path, fake, "restart", backend)
        service = Service(serve, fake)
        try:
            job = service.submit("epochs=6 imgsz=64 dataset=synthetic:32 arch=yolov8n name=survivor")
            service.posted(job.task_id, "started")
            serve.restart(signal.SIGKILL)  # a crash: the worker keeps training in its own session
            restarted_at = time.time()
            final = service.posted(job.task_id, "final")
            assert final["posted_at"] >= restarted_at  # the new process took over the thread
            assert service.job(job.task_id).status is JobStatus.COMPLETED
            service.wait_card(job.task_id, lambda c: "Completed" in json.dumps(c["blocks"]))
            time.sleep(2)
            posts = len(fake.calls_to("chat.postMessage"))
            serve.restart()  # and a clean restart after it finished: nothing new to say
            time.sleep(5)
            assert len(fake.calls_to("chat.postMessage")) == posts
            assert_exactly_once(fake, job.task_id)
            assert {"card", "started", "final"} <= set(keys_of(fake, job.task_id))
        finally:
            service.close()
            stop_serve(serve)
        assert_no_secrets(serve)

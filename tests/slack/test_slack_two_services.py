"""Two ``laxai serve`` on one store with Slack on in both, as an operator scaling out would run them.

Both backends: two services on one ``LAXAI_HOME`` (``[local]``), and two ``--backend
gcp`` on the same Firestore and Pub/Sub emulators with the on_snapshot change feed
(``[gcp]``). Twenty signed ``/train`` commands in four channels go to either service,
alternately and at once. Each job must run once (one execution), get one card and one
final reply, and Slack must never answer 429: both services' dispatchers share the
dispatcher lock, and only the holder of the notifier lease sends (bot/notifier/lease.py),
so the two instances together keep Slack's pace, checked against Slack's published
limits by the recorder (tests/slack/pacing.py), not the fake's. The fake Slack enforces
Slack's limits too, so a second sender would show as 429s as well.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import FakeSlack
from tests.support.serve import ServeProcess

from tests.slack.backends import BACKENDS, fresh_gcp_env
from tests.slack.pacing import Recorder
from tests.slack.slack_env import ALICE, BOT_TOKEN, SIGNING_SECRET, TEAM, slack_env
from tests.slack.slack_requests import SlackSender
from tests.slack.test_slack_e2e import API_TOKEN, ACK_LIMIT, Service, assert_exactly_once, assert_no_secrets, stop_serve
from tests.slack.test_slack_twenty import NO_WANDB

pytestmark = pytest.mark.slow

JOBS = 20
CHANNELS = ("C0TRAIN", "C0TWO2", "C0TWO3", "C0TWO4")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "gcp":
        request.getfixturevalue("firestore_emulator")
        request.getfixturevalue("pubsub_emulator")
    return request.param


def start_pair(tmp: Path, fake: FakeSlack, backend: str) -> list[ServeProcess]:
    """Two services on one store: the same LAXAI_HOME, or the same emulator project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LAXAI_"))}
    env.update(slack_env(fake))
    settings = {"YOLO_DEVICE": "cpu", "GPU_TYPE": "nvidia-l4", "MAX_CONCURRENT_JOBS": "4",
                "MAX_JOBS_PER_TENANT": "4", "PROGRESS_INTERVAL": "0.5", "DISPATCH_INTERVAL": "0.5",
                "SLACK_NOTIFIER_LEASE_SECONDS": "6", "WANDB_MODE": NO_WANDB,
                **(fresh_gcp_env("laxai-two") if backend == "gcp" else {})}
    services = []
    try:
        for name in ("a", "b"):
            serve = ServeProcess(tmp / "home", token=API_TOKEN, tenant=TEAM,
                                 serve_args=("--backend", backend, "--log-level", "info"),
                                 base_env=env, extra_env=settings, log_dir=tmp / f"logs-{name}")
            services.append(serve.start())
    except BaseException:
        for serve in services:
            stop_serve(serve)
        raise
    return services


def test_twenty_jobs_sent_to_either_of_two_services_run_once_with_one_card_and_one_final(tmp_path, backend):
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        a, b = start_pair(tmp_path, fake, backend)
        senders = [SlackSender(s.url, SIGNING_SECRET, team_id=TEAM) for s in (a, b)]
        watcher = Service(a, fake)  # reads the shared store
        recorder = Recorder(fake)
        try:
            def send(i: int):
                text = f"epochs=1 imgsz=32 dataset=synthetic:8 arch=yolov8n name=two{i}"
                return senders[i % 2].command(text, user=ALICE, channel=CHANNELS[i % len(CHANNELS)])

            with ThreadPoolExecutor(max_workers=JOBS) as pool:
                sent = list(pool.map(send, range(JOBS)))
            assert [s.status for s in sent] == [200] * JOBS
            assert all("Queued" in s.text for s in sent), [s.text for s in sent if "Queued" not in s.text]
            assert max(s.seconds for s in sent) < ACK_LIMIT
            jobs = watcher.jobs()
            assert len(jobs) == JOBS
            fake.wait_for(lambda: all(fake.by_metadata(j.task_id, "final") for j in jobs), timeout=900,
                          interval=1.0, what=f"{JOBS} final replies")
            for job in jobs:
                stored = watcher.job(job.task_id)
                assert stored.status is JobStatus.COMPLETED, (job.task_id, stored.status)
                assert len(stored.attempts) == 1, f"{job.task_id[:8]} ran {len(stored.attempts)} times"
                assert len(fake.by_metadata(job.task_id, "card")) == 1
                assert len(fake.by_metadata(job.task_id, "final")) == 1
                assert_exactly_once(fake, job.task_id)
            assert not [c for c in fake.call_log() if c.status == 429], "Slack answered 429"
            recorder.assert_paced(at_least_posts=2 * JOBS)  # a card and a final reply each, at Slack's pace
        finally:
            for sender in senders:
                sender.close()
            watcher.close()
            for serve in (a, b):
                stop_serve(serve)
        for serve in (a, b):
            assert_no_secrets(serve)

"""Twenty concurrent `/train` commands in one channel, end to end, on both backends: each acked within
Slack's 3 s, each job run once to completion with one card and one final reply, every Slack call within
Slack's published limits (tests/slack/pacing.py) and no 429 but the injected ones.

Its own file (the harness is tests/slack/test_slack_e2e.py's) because it is the suite's longest test:
`make test` runs files in parallel, and this one should not queue behind the rest of the e2e file.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import FakeSlack
from tests.slack.pacing import Recorder
from tests.slack.slack_env import ALICE, BOT_TOKEN, TEAM
from tests.slack.test_slack_e2e import (  # noqa: F401 - backend is a fixture
    ACK_LIMIT,
    Service,
    assert_exactly_once,
    assert_no_secrets,
    backend,
    start_serve,
    stop_serve,
)

pytestmark = [pytest.mark.slow]

# W&B off in these 20 workers: a W&B failure never fails a job, so W&B could not fail this test, and
# it cost ~1.75 CPU-s a worker (W&B is checked in tests/worker/test_worker_runs.py, _offline, _baseline).
NO_WANDB = "disabled"


@pytest.mark.timeout(1200)  # 20 real trainings; on 2 cores beside the rest of the suite it can pass 600 s
def test_twenty_concurrent_commands_in_one_channel(tmp_path, backend):
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        serve = start_serve(tmp_path, fake, "twenty", backend, MAX_CONCURRENT_JOBS="2", MAX_JOBS_PER_TENANT="2",
                            WANDB_MODE=NO_WANDB)
        service = Service(serve, fake)
        recorder = Recorder(fake)  # Slack's published limits, whatever the fake lets through
        try:
            fake.fail(429, methods="chat.postMessage", times=2, retry_after=2)  # and Slack pushes back once
            texts = [f"epochs=1 imgsz=32 dataset=synthetic:8 arch=yolov8n name=n{i}" for i in range(20)]
            with ThreadPoolExecutor(max_workers=20) as pool:
                sent = list(pool.map(lambda t: service.sender.command(t, user=ALICE), texts))
            assert all(s.status == 200 for s in sent)
            slowest = max(s.seconds for s in sent)
            assert slowest < ACK_LIMIT, f"slowest ack {slowest:.2f}s"
            jobs = service.jobs()
            assert len(jobs) == 20
            fake.wait_for(lambda: all(fake.by_metadata(j.task_id, "final") for j in jobs), timeout=900,
                          interval=1.0, what="20 final replies")
            for job in jobs:
                assert service.job(job.task_id).status is JobStatus.COMPLETED
                assert len(fake.by_metadata(job.task_id, "final")) == 1
                assert_exactly_once(fake, job.task_id)
            posts = fake.calls_to("chat.postMessage")
            assert any(c.status == 429 for c in posts)  # the injected ones, at least
            ok = [c.mono for c in posts if c.ok]
            # Never more than ~1 a second in the channel: any 10 s window holds at most 11 posts.
            assert all(sum(1 for t in ok if start <= t < start + 10) <= 11 for start in ok)
            assert recorder.calls("chat.update")  # the premise: cards were edited
            # 1 post/s per channel (a burst of 2), 50 chat.update a minute, and no 429 but the injected two.
            recorder.assert_paced(at_least_posts=2 * len(jobs))  # a card and a final reply each
            assert not [c for c in recorder.calls("chat.update") if c.status == 429]
            for job in jobs:  # and every card ends completed
                service.wait_card(job.task_id, lambda c: "Completed" in json.dumps(c["blocks"]), timeout=120)
        finally:
            service.close()
            stop_serve(serve)
        assert_no_secrets(serve)

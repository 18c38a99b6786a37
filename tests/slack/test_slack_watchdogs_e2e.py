"""The stall watchdog end to end: ``laxai serve`` as a subprocess, a signed ``/train`` request, a real tiny
training whose first execution hangs in a batch (LAXAI_TEST_INJECT=hang_at_batch, worker/inject.py). The
worker ends it as ``stalled``, the dispatcher resumes it from its checkpoint, the thread says what happened
and what to try, and REST and ``laxai status`` show the stalled execution."""

from __future__ import annotations

import json
import subprocess

import pytest

from orchestrator.domain.job import EndReason
from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import FakeSlack
from tests.slack.slack_env import BOT_TOKEN, TEAM
from tests.slack.test_slack_e2e import API_TOKEN, TINY, Service, start_serve, stop_serve
from tests.support.serve import LAXAI

pytestmark = pytest.mark.slow

# Two batches an epoch: batch 3 is epoch 2's first, after epoch 1's checkpoint.
STALLS = {"LAXAI_TEST_INJECT": "hang_at_batch:3", "STALL_SECONDS": "4"}
ENDED = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


def test_a_stalled_run_resumes_and_its_thread_rest_and_cli_say_so(tmp_path):
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        serve = start_serve(tmp_path, fake, "stall", "local", **STALLS)
        service = Service(serve, fake)
        try:
            job = service.submit(TINY + " batch=8 name=stalls")
            card = service.posted(job.task_id, "card", timeout=30)
            resumed = service.posted(job.task_id, "resumed:2")
            final = service.posted(job.task_id, "final")
            done = service.wait_status(job.task_id, ENDED)
            view = service.api.get(f"/jobs/{job.task_id}").json()
            env = {**serve.env, "LAXAI_URL": serve.url, "LAXAI_TOKEN": API_TOKEN}
            cli = subprocess.run([LAXAI, "status", job.task_id], env=env, capture_output=True, text=True, timeout=60)
        finally:
            service.close()
            stop_serve(serve)
    assert done.status is JobStatus.COMPLETED, done.error
    first, second = done.attempts
    assert first.end_reason is EndReason.STALLED and second.start_epoch == first.end_epoch == 1, done.attempts
    assert done.recoveries == 1
    text = resumed["text"] + json.dumps(resumed["blocks"])
    assert "Stalled* at epoch 1/2" in text and "STALL_SECONDS=4" in text, text
    assert "resumed from checkpoint at epoch 1" in text and "MAX_RECOVERIES" in text, text
    assert resumed["thread_ts"] == final["thread_ts"] == card["ts"]
    assert [a["why"] for a in view["attempts"]] == ["stalled", "completed"]
    assert cli.returncode == 0 and "#1 stalled" in cli.stdout, cli.stdout + cli.stderr

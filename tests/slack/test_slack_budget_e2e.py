"""End to end: a budget set with ``/train budget set`` holds the next ``/train``; the running dispatcher
leaves it alone, a non-admin's Approve is refused, an admin's Approve starts it and a real tiny worker
trains it to completion, the thread telling each step. ``laxai serve`` as a subprocess with the
fake Slack, on both backends (SQLite; Firestore and Pub/Sub emulators). Slow: it trains a model.
"""

from __future__ import annotations

import json
import time

import pytest

from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import FakeSlack
from tests.slack.backends import BACKENDS
from tests.slack.slack_env import ADMIN, ALICE, BOB, BOT_TOKEN, TEAM
from tests.slack.test_slack_e2e import ACK_LIMIT, TINY, Service, start_serve, stop_serve

pytestmark = pytest.mark.slow


@pytest.fixture(params=BACKENDS)
def service(request: pytest.FixtureRequest, tmp_path):
    if request.param == "gcp":
        request.getfixturevalue("firestore_emulator")
        request.getfixturevalue("pubsub_emulator")
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        serve = start_serve(tmp_path, fake, "budget", request.param)
        running = Service(serve, fake)
        try:
            yield running
        finally:
            running.close()
            stop_serve(serve)


def shown(service, task_id: str, key: str, timeout: float = 60.0) -> dict:
    """The job's message ``key`` as Slack shows it now."""
    found = service.posted(task_id, key, timeout=timeout)
    return service.fake.message(found["channel"], found["ts"])


def test_an_admins_approve_starts_a_held_job_and_a_real_worker_completes_it(service):
    set_ = service.sender.command("budget set channel 0.001/month", user=ADMIN)
    assert "budget is now" in set_.text, set_.text
    before = {j.task_id for j in service.jobs()}
    sent = service.sender.command(TINY + " name=held-e2e", user=ALICE)
    assert sent.status == 200 and sent.seconds < ACK_LIMIT and "Held for approval" in sent.text, sent.text
    (job,) = [j for j in service.jobs() if j.task_id not in before]

    card = shown(service, job.task_id, "card", timeout=30)
    request = shown(service, job.task_id, "approval", timeout=30)
    assert request["thread_ts"] == card["ts"] and "Would cross channel <#C0TRAIN>'s $0.0010/month budget" in \
        json.dumps(request["blocks"])
    seen = len(service.fake.ephemerals)
    assert service.sender.click(request, "laxai_approve", user=BOB).status == 200
    note = service.fake.wait_for(lambda: service.fake.ephemerals[seen:], timeout=10)[0]
    assert note["user"] == BOB and "Only an admin" in note["text"]
    time.sleep(3.0)  # several dispatcher passes (DISPATCH_INTERVAL 0.5 s): a held job is not taken
    held = service.job(job.task_id)
    assert held.status is JobStatus.AWAITING_APPROVAL and not held.attempts

    assert service.sender.click(request, "laxai_approve", user=ADMIN).status == 200
    done = service.wait_status(job.task_id, {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
    assert done.status is JobStatus.COMPLETED, done.error
    assert done.approval.decided_by == ADMIN and done.attempts
    decision = shown(service, job.task_id, "decision")
    final = shown(service, job.task_id, "final")
    assert "Approved* by <@U0ADMIN>" in json.dumps(decision["blocks"])
    assert "Completed" in final["text"] and float(decision["ts"]) < float(final["ts"])
    closed = service.fake.wait_for(
        lambda: (lambda m: m if "laxai_approve" not in json.dumps(m["blocks"]) else None)(
            shown(service, job.task_id, "approval")), timeout=30)
    assert "Approved* by <@U0ADMIN>" in json.dumps(closed["blocks"])

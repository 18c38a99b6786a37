"""A cost cap through Slack, end to end: ``laxai serve`` as a subprocess, a signed ``/train … max_cost=``
request, a real tiny training on the local backend. The job stops at its first checkpoint, the thread says
what was spent, and a click on the card's Retry continues from that checkpoint and completes."""

from __future__ import annotations

import json

import pytest

from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import FakeSlack
from tests.slack.slack_env import BOT_TOKEN, TEAM
from tests.slack.test_slack_e2e import TINY, Service, has_button, start_serve, stop_serve

pytestmark = pytest.mark.slow


def test_a_capped_job_stops_says_what_it_spent_and_retry_goes_on(tmp_path):
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        serve = start_serve(tmp_path, fake, "cap", "local")
        service = Service(serve, fake)
        try:
            job = service.submit(TINY + " max_cost=0.0001 name=capped")
            final = service.posted(job.task_id, "final")
            stopped = service.job(job.task_id)
            card = service.wait_card(job.task_id, has_button("laxai_retry"))
            click = service.sender.click(card, "laxai_retry")
            assert click.status == 200
            (retry,) = service.fake.wait_for(lambda: [j for j in service.jobs() if j.retry_of == job.task_id],
                                             timeout=30, what="the retry")
            done = service.wait_status(retry.task_id, {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
        finally:
            service.close()
            stop_serve(serve)
    assert stopped.status is JobStatus.CANCELLED and stopped.cancel.by == "budget", stopped
    text = json.dumps(final["blocks"], ensure_ascii=False)
    assert "*Stopped* at epoch 1/2: stopped at the cost cap: $" in text and "spent of $0.0001" in text, text
    assert "*Retry* continues from it" in text
    assert done.status is JobStatus.COMPLETED, done.error
    assert done.resume_from == job.task_id and done.attempts[0].start_epoch == 1, done.attempts

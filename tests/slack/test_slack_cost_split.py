"""The completion reply says where the money went: ``laxai serve`` as a subprocess, a real signed
``/train`` request, a real tiny training on the local backend, the reply read from the fake Slack.

A tiny CPU run is mostly overhead (imports, the dataset, uploads), so its split is always shown."""

from __future__ import annotations

import json

import pytest

from orchestrator.domain.cost import format_usd
from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import FakeSlack
from tests.slack.slack_env import BOT_TOKEN, TEAM
from tests.slack.test_slack_e2e import TINY, Service, start_serve, stop_serve

pytestmark = pytest.mark.slow


def test_the_completion_reply_shows_the_split_when_overhead_passes_five_percent(tmp_path):
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        serve = start_serve(tmp_path, fake, "split", "local")
        service = Service(serve, fake)
        try:
            job = service.submit(TINY + ' name="split run"')
            final = service.posted(job.task_id, "final")
            done = service.job(job.task_id)
        finally:
            service.close()
            stop_serve(serve)
    assert done.status is JobStatus.COMPLETED, done.error
    cost = done.cost
    assert cost.overhead_s > 0.05 * cost.billed_seconds and cost.training_s > 0, cost  # the premise
    text = json.dumps(final["blocks"], ensure_ascii=False)
    assert f"Cost {format_usd(cost.usd)}: training {format_usd(cost.training_usd)}" in text, text
    assert f"overhead {format_usd(cost.overhead_usd)}" in text and "start, imports, data, uploads" in text, text
    assert "lost" not in text  # nothing was redone

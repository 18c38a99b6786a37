"""Fair share from Slack (issue 14, finding 5): a signed /train above MAX_QUEUED_PER_TENANT gets an
ephemeral reply naming the limit, and nothing is stored.

The service runs in this process without a dispatcher (every job stays queued), with the Slack
front end installed through its entry point and talking to the fake Slack Web API; requests are
signed as Slack signs them.
"""

from __future__ import annotations

import pytest

from orchestrator.config import load_settings
from orchestrator.domain.status import JobStatus
from orchestrator.serve import ServiceThread
from tests.fakes.fake_slack import FakeSlack
from tests.slack.slack_env import BOT_TOKEN, SIGNING_SECRET, TEAM, slack_env
from tests.slack.slack_requests import SlackSender

LIMIT = 2


@pytest.fixture
def slack_service(tmp_path, monkeypatch):
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        for name, value in slack_env(fake).items():
            monkeypatch.setenv(name, value)
        settings = load_settings(LAXAI_HOME=tmp_path / "home", MAX_QUEUED_PER_TENANT=LIMIT)
        with ServiceThread(settings, dispatch=False) as service:
            sender = SlackSender(service.url, SIGNING_SECRET, team_id=TEAM)
            try:
                yield service, sender
            finally:
                sender.close()


def test_train_above_the_queued_cap_answers_an_ephemeral_message_naming_the_limit(slack_service):
    service, sender = slack_service
    store = service.runtime.backend.store
    for i in range(LIMIT):
        accepted = sender.command(f"epochs=1 name=ok-{i}")
        assert accepted.status == 200 and "Queued" in accepted.text, accepted.text
    refused = sender.command("epochs=1 name=too-many")
    assert refused.status == 200  # Slack shows an ack's text to the user; an error status would not
    assert refused.json()["response_type"] == "ephemeral"
    assert f"MAX_QUEUED_PER_TENANT is {LIMIT}" in refused.text and "Not submitted" in refused.text
    jobs = store.list(tenant_id=TEAM, limit=10)
    assert sorted(j.spec.custom_name for j in jobs) == ["ok-0", "ok-1"]
    assert all(j.status is JobStatus.QUEUED for j in jobs)
    # Another team (another tenant) is not held back by this one's queue.
    other = SlackSender(service.url, SIGNING_SECRET, team_id="T0OTHER")
    try:
        assert "Queued" in other.command("epochs=1 name=elsewhere").text
    finally:
        other.close()

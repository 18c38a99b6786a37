"""JobService.retry: where a retry of a Slack job lives (the original's thread), on a real SQLite store."""

from __future__ import annotations

import pytest

from orchestrator.backends import open_backend
from orchestrator.config import load_settings
from orchestrator.domain.job import Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.service import JobService

from bot.ledger import Ledger
from bot.threads.base import SlackThread
from bot.threads.sqlite import SqliteSlackThreads

CARD_TS = "1795971829.000001"


@pytest.fixture
def service(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path)
    backend = open_backend(settings)
    service = JobService(backend)
    # The Slack extension's hook (bot/extension.py): the card's ts comes from the slack_threads record.
    service.slack_threads = SqliteSlackThreads(settings.db_path)
    ledger = Ledger(service.slack_threads, "test")
    service.give_retries_threads("slack", lambda original: ledger.read(original).card_ts)
    yield service
    service.slack_threads.close()
    backend.close()


def finished_slack_job(service: JobService, card_ts: str | None) -> str:
    job, _ = service.submit(JobSpec(tenant_id="T1"), Origin(source="slack", user="U1", team="T1", channel="C1"))
    if card_ts is not None:
        service.slack_threads.update(job.task_id, lambda r: SlackThread(r.task_id, card_ts=card_ts))
    service.cancel("T1", job.task_id, by="U1")  # a queued job: cancelled at once
    assert service.store.get(job.task_id).status.is_terminal()
    return job.task_id


def clicked(thread_ts: str | None) -> Origin:
    return Origin(source="slack", user="U2", team="T1", channel="C1", thread_ts=thread_ts)


def test_a_retry_goes_to_the_thread_of_the_original_card(service):
    task = finished_slack_job(service, CARD_TS)
    retry = service.retry("T1", task, origin=clicked("9999.0001"))
    assert retry.origin.thread_ts == CARD_TS  # what the job knows wins over the click
    assert retry.retry_of == task and retry.origin.user == "U2"


def test_before_the_card_ts_is_stored_the_clicked_card_gives_the_thread(service):
    task = finished_slack_job(service, None)  # the notifier's record has not landed yet
    retry = service.retry("T1", task, origin=clicked(CARD_TS))
    assert retry.origin.thread_ts == CARD_TS


def test_a_retry_of_a_retry_keeps_to_the_root(service):
    task = finished_slack_job(service, CARD_TS)
    first = service.retry("T1", task, origin=clicked(CARD_TS))
    service.cancel("T1", first.task_id, by="U1")
    second = service.retry("T1", first.task_id, origin=clicked(CARD_TS))
    assert second.origin.thread_ts == CARD_TS


def test_a_rest_retry_of_a_slack_job_is_not_put_in_a_thread(service):
    task = finished_slack_job(service, CARD_TS)
    retry = service.retry("T1", task, origin=Origin(source="api"))
    assert retry.origin.source == "api" and retry.origin.thread_ts is None

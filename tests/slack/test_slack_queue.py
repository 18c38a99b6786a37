"""The card while queued says its place in line and why, and moves up when the job ahead ends; while
running it says its ETA. Signed /train requests to the app in-process (the notifier installed by the
real extension), with MAX_CONCURRENT_JOBS=1; jobs move through the real transitions (jobflow), so
the change feed fires as in production (bot/notifier/queue_cards.py, bot/blocks.py ``card``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from orchestrator.domain import transitions as t
from orchestrator.domain.job import Job, Progress, utcnow
from tests.slack import jobflow
from tests.slack.pacing import Recorder
from tests.slack.slack_env import CHANNEL

LINE = " \u00b7 "


def submit(service, name: str) -> Job:
    before = {j.task_id for j in service.store.list(limit=100)}
    sent = service.sender.command(f"epochs=4 imgsz=64 dataset=synthetic:16 arch=yolov8n name={name}")
    assert sent.status == 200 and "Queued" in sent.text, sent.text
    (job,) = [j for j in service.store.list(limit=100) if j.task_id not in before]
    return job


def card(service, job: Job) -> str:
    """The card as Slack shows it now (its blocks, as text)."""
    ts = service.notifier.ledger.read(job).card_ts
    message = service.fake.message(CHANNEL, ts) if ts else None
    return json.dumps(message["blocks"], ensure_ascii=False) if message else ""


def card_says(service, job: Job, text: str, timeout: float = 30.0) -> str:
    return service.fake.wait_for(lambda: text in card(service, job) and card(service, job), timeout=timeout,
                                 what=f"the card of {job.spec.custom_name} to say {text!r}")


def with_eta(job: Job, store, eta_seconds: float) -> Job:
    number = job.current_attempt.number
    update = Progress(epoch=1, total_epochs=4, progress_percent=25.0, loss=1.2, message="Epoch 1/4",
                      eta_seconds=eta_seconds)
    cost = t.cost_of(job, jobflow.RATES, jobflow.ESTIMATE)
    changed = store.update(job.task_id, lambda j: t.report_progress(j, number, update, None, utcnow(), cost),
                           kind="progress")
    assert changed is not None
    return changed


def test_a_queued_card_says_its_place_and_moves_up_when_the_job_ahead_finishes(make_inproc):
    service = make_inproc(MAX_CONCURRENT_JOBS="1")
    first, second, third = (submit(service, f"q{i}") for i in range(3))
    first = jobflow.start(service.store.get(first.task_id), service.store)

    card_says(service, second, f"*Queued*{LINE}1st in line{LINE}the only slot is busy")
    card_says(service, third, f"*Queued*{LINE}2nd in line{LINE}the only slot is busy")

    first = with_eta(first, service.store, 720.0)
    finish = datetime.fromtimestamp(first.progress.updated_at.timestamp() + 720, timezone.utc)
    running = card_says(service, first, "ETA 12 min")
    assert f"ETA 12 min{LINE}\u2248 {finish:%H:%M} UTC" in running
    assert "in line" not in running

    assert service.notifier.wait_idle(30)
    recorder = Recorder(service.fake)
    versions = {j.task_id: service.store.get(j.task_id).version for j in (second, third)}
    jobflow.complete(service.store.get(first.task_id), service.store)
    # The slot is free: the next pass starts the second (no dispatcher here: it stays queued).
    card_says(service, second, f"*Queued*{LINE}1st in line{LINE}starting")
    assert service.notifier.wait_idle(30)
    assert {j.task_id: service.store.get(j.task_id).version for j in (second, third)} == versions
    edited = {c.args.get("ts") for c in recorder.calls("chat.update")}
    ledger = service.notifier.ledger
    assert ledger.read(second).card_ts in edited  # its own job never changed: the one ahead did
    # The third is still 2nd, behind the job taking the only slot: its card says the same, and is not edited.
    assert f"*Queued*{LINE}2nd in line{LINE}the only slot is busy" in card(service, third)
    assert ledger.read(third).card_ts not in edited

    second = jobflow.start(service.store.get(second.task_id), service.store)
    card_says(service, third, f"*Queued*{LINE}1st in line{LINE}the only slot is busy")
    running = card_says(service, second, "*Running*")
    assert "in line" not in running
    assert service.notifier.wait_idle(30)
    recorder.assert_paced()


def test_a_card_is_edited_only_when_its_place_changes(make_inproc):
    """A job ahead reporting progress moves nobody: the queued cards are not edited again."""
    service = make_inproc(MAX_CONCURRENT_JOBS="1")
    first, second = submit(service, "p0"), submit(service, "p1")
    first = jobflow.start(service.store.get(first.task_id), service.store)
    card_says(service, second, f"1st in line{LINE}the only slot is busy")
    assert service.notifier.wait_idle(30)
    second_ts = service.notifier.ledger.read(second).card_ts
    recorder = Recorder(service.fake)
    for epoch in (1, 2, 3):
        first = jobflow.progress(service.store.get(first.task_id), service.store, epoch=epoch)
    service.fake.wait_for(lambda: "epoch 3/4" in card(service, first), timeout=30, what="the running card edited")
    assert service.notifier.wait_idle(30)
    assert second_ts not in {c.args.get("ts") for c in recorder.calls("chat.update")}

"""The watchdogs in the thread: a stalled attempt's resume reply and a diverged job's final reply say
what happened and what to try (bot/blocks.py, bot/plan.py); the signed end to end run is in
tests/slack/test_slack_watchdogs_e2e.py."""

from __future__ import annotations

import json

from bot import plan
from orchestrator.domain.job import EndReason, JobError, utcnow
from orchestrator.domain.transitions import finish
from tests.fakes.fake_slack import validate_blocks
from worker.watchdog import Diverged

from tests.slack import jobflow

STALL = "no training batch finished for 600 s (STALL_SECONDS=600); 12 s of training since the last checkpoint " \
        "(epoch 2) is redone"


def text_of(message) -> str:
    assert not validate_blocks(message.blocks), validate_blocks(message.blocks)
    return message.text + json.dumps(message.blocks)


def test_a_stalled_attempt_is_announced_with_what_happened_and_what_to_try():
    job = jobflow.progress(jobflow.start(jobflow.make_job(epochs=4)), epoch=2)
    job = jobflow.interrupt(job, reason=EndReason.STALLED, lost_seconds=12, detail=STALL)
    job = jobflow.start(job, start_epoch=2)
    assert [step.key for step in plan.due(job) if step.key.startswith("resumed:")] == ["resumed:2"]
    text = text_of(plan.render(job, "resumed:2"))
    assert "Stalled* at epoch 2/4" in text and "STALL_SECONDS=600" in text
    assert "resumed from checkpoint at epoch 2" in text
    assert "counts against MAX_RECOVERIES" in text and "check the dataset's storage" in text
    # Only a stall carries the hint: a planned continuation needs nothing from anyone.
    planned = jobflow.start(jobflow.interrupt(jobflow.progress(jobflow.start(jobflow.make_job(epochs=4)), epoch=1),
                                              reason=EndReason.CONTINUATION), start_epoch=1)
    assert "MAX_RECOVERIES" not in text_of(plan.render(planned, "resumed:2"))


def test_a_diverged_job_fails_with_where_and_what_to_change():
    job = jobflow.progress(jobflow.start(jobflow.make_job(epochs=4)), epoch=1)
    message = str(Diverged(float("nan"), 2, 5, 0.01, 16))
    error = JobError(reason=EndReason.DIVERGED.value, message=message)
    number = job.current_attempt.number
    job = finish(job, number, EndReason.DIVERGED, utcnow(), jobflow.RATES, jobflow.ESTIMATE, error=error,
                 detail=message, progress=job.progress)
    assert [step.key for step in plan.due(job)] == ["card", "final"]
    text = text_of(plan.render(job, "final"))
    assert "Failed* at epoch 1/4" in text and "training diverged" in text
    assert "became nan at epoch 2, batch 5" in text
    assert "learning_rate 0.01, e.g. 0.005" in text and "batch_size 16, e.g. 8" in text

"""The out-of-memory watchdog in the thread: one reply per retry (``oom:N``), and the failure's hint.

The plan and the words are pure (first tests); the last test runs the real notifier against the fake
Slack on both backends, the job moved by the real out-of-memory transition (orchestrator/domain/oom.py).
"""

from __future__ import annotations

import json

import pytest

from bot import blocks, plan
from orchestrator.domain.job import Job, utcnow
from orchestrator.domain.oom import after_out_of_memory
from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import validate_blocks

from tests.slack import jobflow
from tests.slack.slack_env import CHANNEL
from tests.slack.test_slack_notifier import Rig  # the notifier's rig: a store, the fake Slack, a notifier

CUDA = "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def out_of_memory(job: Job, store=None, retries: int = 2, end_epoch: int = 0) -> Job:
    number = job.current_attempt.number

    def fn(j: Job) -> Job | None:
        return after_out_of_memory(j, number, utcnow(), jobflow.RATES, retries, 3, jobflow.ESTIMATE, detail=CUDA,
                                   end_epoch=end_epoch)

    if store is None:
        return fn(job)
    changed = store.update(job.task_id, fn, kind="out_of_memory")
    assert changed is not None
    return changed


def make(epochs: int, batch: int) -> Job:
    job = jobflow.make_job(epochs=epochs)
    params = job.spec.training_params.model_copy(update={"batch_size": batch})
    return job.model_copy(update={"spec": job.spec.model_copy(update={"training_params": params})})


def posted(job: Job, *keys: str) -> Job:
    return job.model_copy(update={"notify": {"posted": {k: "1.0" for k in keys}}})


def keys(job: Job) -> list[str]:
    return [s.key for s in plan.due(job)]


def text_of(message: blocks.Message) -> str:
    assert not validate_blocks(message.blocks), validate_blocks(message.blocks)
    return message.text + json.dumps(message.blocks, ensure_ascii=False)


def test_each_retry_is_announced_once_with_both_batches_and_no_resumed_reply():
    job = jobflow.start(make(10, 32))
    job = out_of_memory(posted(job, "card", "started"), end_epoch=3)
    assert keys(job) == ["oom:1"]
    message = plan.render(job, "oom:1")
    assert message.text.startswith(":warning: Out of memory at batch 32 \u2192 retrying with batch 16 (retry 1), "
                                   "resuming from the checkpoint at epoch 3/10.")
    assert CUDA in text_of(message) and "; retrying with batch" not in text_of(message)
    job = jobflow.start(posted(job, "card", "started", "oom:1"), start_epoch=3)
    assert keys(job) == []  # the oom:1 reply said it: no "resumed:2" besides
    job = out_of_memory(job)
    assert keys(job) == ["oom:2"]
    second = plan.render(job, "oom:2").text
    assert "Out of memory at batch 16 \u2192 retrying with batch 8 (retry 2), starting over" in second
    card = text_of(plan.render(job, "card"))
    assert "8 (asked 32; out of memory)" in card


def test_the_failure_after_the_last_retry_says_why_and_what_to_try():
    job = jobflow.start(make(4, 4))
    job = out_of_memory(jobflow.start(out_of_memory(job, retries=1)), retries=1)
    assert job.status is JobStatus.FAILED
    assert keys(posted(job, "card", "oom:1")) == ["final"]
    final = text_of(plan.render(job, "final"))
    assert "*Failed*" in final and "out of memory, with no smaller batch left to retry" in final
    assert "out of memory at batch 2 after 1 retry with a smaller batch (OOM_RETRIES=1)" in final
    assert "Try: resubmit with batch_size 1 or less" in final


def test_a_retry_the_notifier_missed_is_still_told_before_the_final_reply():
    job = jobflow.start(make(4, 8))
    job = jobflow.complete(jobflow.start(out_of_memory(job)))
    assert keys(job) == ["card", "oom:1", "final"]
    assert plan.due(job)[1].priority == plan.FINAL


def test_the_notifier_posts_the_retry_in_the_thread_once(rig):
    rig.start()
    job, _ = rig.store.create(make(2, 8))
    job = jobflow.start(job, rig.store)
    rig.wait_posted(job, "started")
    job = out_of_memory(rig.get(job), rig.store, end_epoch=1)
    (reply,) = rig.wait_posted(job, "oom:1")
    assert "Out of memory at batch 8 \u2192 retrying with batch 4 (retry 1)" in reply["text"]
    jobflow.complete(jobflow.start(rig.get(job), rig.store, start_epoch=1), rig.store)
    rig.wait_posted(job, "final")
    rig.idle()
    card = rig.posts(job, "card")[0]
    thread = rig.fake.thread(CHANNEL, card["ts"])
    assert [m["metadata"]["event_payload"]["key"] for m in thread] == ["card", "started", "oom:1", "final"]
    assert "4 (asked 8; out of memory)" in json.dumps(rig.fake.message(CHANNEL, card["ts"])["blocks"])


@pytest.fixture
def rig(tmp_path, fake_slack, use_backend):
    rig = Rig(tmp_path, fake_slack)
    yield rig
    rig.close()

"""The watchdogs in a real worker (worker/watchdog.py), with faults injected into real training batches
(LAXAI_TEST_INJECT, worker/inject.py): a NaN loss fails the job as ``diverged`` within the batch, and a
training loop that hangs while the process heartbeats is requeued as ``stalled`` and resumes."""

from __future__ import annotations

import pytest

from orchestrator.domain.job import EndReason
from orchestrator.domain.status import JobStatus

# synthetic:16 at batch 8: two batches an epoch, so batch 3 is epoch 2's first, after epoch 1's last.pt.
EPOCH_TWO_FIRST_BATCH = "3"


@pytest.mark.slow
def test_nan_loss_fails_the_job_as_diverged_within_the_batch(harness):
    task_id = harness.submit(epochs=2)
    code, worker = harness.run(task_id, 1, LAXAI_TEST_INJECT=f"nan_loss_at_batch:{EPOCH_TWO_FIRST_BATCH}")
    assert code == 0, worker.tail()

    job = harness.job(task_id)
    assert job.status is JobStatus.FAILED, worker.tail()
    assert job.error.reason == "diverged"
    assert "became nan at epoch 2, batch 1" in job.error.message
    assert "learning_rate 0.001, e.g. 0.0005" in job.error.message and "batch_size 8, e.g. 4" in job.error.message
    (attempt,) = job.attempts  # no retry: the same spec would diverge again
    assert attempt.end_reason is EndReason.DIVERGED and attempt.detail == job.error.message
    assert job.recoveries == 0
    # Stopped within the batch: epoch 2 never finished, and epoch 1's checkpoint is kept.
    assert job.progress.epoch == 1 and attempt.end_epoch == 1
    assert job.artifacts.last_checkpoint is not None
    done = [e.job.progress.message for e in harness.events(task_id) if e.kind == "progress"]
    assert not any(m.startswith("Epoch 2/2 done") for m in done)
    assert "Traceback" not in job.error.message


@pytest.mark.slow
def test_stalled_worker_is_requeued_and_resumes_from_its_checkpoint(harness):
    task_id = harness.submit(epochs=2)
    env = {"LAXAI_TEST_INJECT": f"hang_at_batch:{EPOCH_TWO_FIRST_BATCH}", "STALL_SECONDS": "4"}
    code, worker = harness.run(task_id, 1, **env)
    assert code == 0, worker.tail()

    job = harness.job(task_id)
    assert job.status is JobStatus.QUEUED, worker.tail()
    (first,) = job.attempts
    assert first.end_reason is EndReason.STALLED, worker.tail()
    assert "no training batch finished for" in first.detail and "STALL_SECONDS=4" in first.detail
    assert first.end_epoch == 1 and job.recoveries == 1  # counts against MAX_RECOVERIES
    assert job.artifacts.last_checkpoint is not None
    messages = harness.backend.queue.pull(max_messages=10, timeout=1)
    assert [(m.task_id, m.attributes.get("reason")) for m in messages] == [(task_id, "stalled")]

    # The next execution (the fault hangs only the first) resumes from epoch 1's last.pt and finishes.
    assert harness.claim(task_id) == 2
    code, worker = harness.run(task_id, 2, LAXAI_TEST_INJECT=env["LAXAI_TEST_INJECT"])
    assert code == 0, worker.tail()
    job = harness.job(task_id)
    assert job.status is JobStatus.COMPLETED, worker.tail()
    second = job.attempts[1]
    assert second.start_epoch == 1 and second.end_reason is EndReason.COMPLETED
    assert "Resuming training" in worker.tail(400)
    assert job.status_view()["attempts"][0]["why"] == "stalled"

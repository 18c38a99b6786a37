"""Out of memory in real training: the job is retried with half the batch, from its checkpoint.

A real worker trains a tiny job at batch 8 while ``LAXAI_TEST_INJECT`` (worker/inject.py) raises
``torch.cuda.OutOfMemoryError`` from a real Ultralytics batch callback whenever the run's batch is
over 4, from epoch 2 on (so epoch 1's last.pt exists). The worker's own closing path must requeue
the job at batch 4 (orchestrator/domain/oom.py), and the next execution must resume from last.pt
with that batch (Ultralytics' resume keeps its saved args, but lets the batch change): were it at
8 again, it would run out again.
"""

from __future__ import annotations

from bot import plan
from orchestrator.domain.job import EndReason
from orchestrator.domain.status import JobStatus
from worker.fenced import EXIT_OK

INJECT = {"LAXAI_TEST_INJECT": "oom_when_batch_over:4,oom_from_epoch:2"}


def test_out_of_memory_at_batch_8_retries_at_4_from_the_checkpoint_and_completes(harness):
    task_id = harness.submit(epochs=2)  # batch 8
    code, worker = harness.run(task_id, 1, **INJECT)
    assert code == EXIT_OK, worker.tail()
    job = harness.job(task_id)
    assert job.status is JobStatus.QUEUED, worker.tail()
    first = job.attempts[0]
    assert (first.end_reason, first.batch_size, first.end_epoch) == (EndReason.OUT_OF_MEMORY, 8, 1)
    assert "CUDA out of memory" in first.detail and first.detail.endswith("; retrying with batch 4")
    assert job.batch_override == 4 and job.spec.training_params.batch_size == 8
    assert job.artifacts.last_checkpoint  # epoch 1's, to resume from
    assert [s.key for s in plan.due(job)] == ["card", "oom:1"]
    announced = plan.render(job, "oom:1").text
    assert "Out of memory at batch 8 \u2192 retrying with batch 4 (retry 1), resuming from the checkpoint at " \
           "epoch 1/2" in announced

    code, worker = harness.run(task_id, harness.claim(task_id), **INJECT)
    assert code == EXIT_OK, worker.tail()
    job = harness.job(task_id)
    assert job.status is JobStatus.COMPLETED, worker.tail()
    assert job.error is None and job.recoveries == 0
    view = job.status_view()
    assert [(a["why"], a["batch_size"], a["start_epoch"]) for a in view["attempts"]] == [
        ("out_of_memory", 8, 0), ("completed", 4, 1)]
    assert view["batch_size"] == 4
    log = worker.log.read_text(errors="replace")
    assert log.count("CUDA out of memory at batch size 8") == 1  # the first execution's, and only that
    assert "resuming" in log.lower()

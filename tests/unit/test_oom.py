"""The out-of-memory rule (orchestrator/domain/oom.py): half the batch, OOM_RETRIES times, then a hint."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.config import load_settings
from orchestrator.domain.cost import rates_for
from orchestrator.domain.job import EndReason, Job, Progress
from orchestrator.domain.oom import after_out_of_memory, failure_message, next_batch, retries, retries_used
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import claim, request_cancel, worker_started

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
RATES = rates_for("nvidia-l4", 1, "4000m", "16Gi")
CUDA = "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(("batch", "used", "most", "expected"), [
    (32, 0, 2, 16),
    (16, 1, 2, 8),
    (8, 2, 2, None),  # the retries are spent
    (7, 0, 2, 3),  # odd: rounded down
    (3, 0, 2, 1),
    (2, 0, 2, 1),
    (1, 0, 2, None),  # nothing smaller than 1
    (64, 0, 0, None),  # OOM_RETRIES=0: never
    (1024, 9, 10, 512),
])
def test_next_batch_table(batch, used, most, expected):
    assert next_batch(batch, used, most) == expected


def running(batch: int = 32, epochs: int = 10) -> Job:
    job = Job(tenant_id="t", spec=JobSpec(tenant_id="t", training_params={"epochs": epochs, "batch_size": batch}),
              created_at=T0, updated_at=T0, progress=Progress(total_epochs=epochs))
    return start(job, 1)


def start(job: Job, seconds: float) -> Job:
    job = claim(job, at(seconds), 600)
    return worker_started(job, job.current_attempt.number, at(seconds + 1), 60, "cuda:0 NVIDIA L4",
                          job.progress.epoch)


def oom(job: Job, seconds: float, retries_allowed: int = 2, **closing) -> Job:
    return after_out_of_memory(job, job.current_attempt.number, at(seconds), RATES, retries_allowed, 3,
                               detail=CUDA, **closing)


def test_out_of_memory_requeues_with_half_the_batch_keeping_the_spec():
    job = oom(running(32), 10, end_epoch=3, lost_seconds=4.0, training_seconds=6.0)
    assert job.status is JobStatus.QUEUED and job.error is None
    assert job.spec.training_params.batch_size == 32  # the submitted spec is kept as it was
    assert job.batch_override == 16 and job.batch_size == 16
    first = job.attempts[0]
    assert first.end_reason is EndReason.OUT_OF_MEMORY and first.batch_size == 32 and first.end_epoch == 3
    assert first.detail == f"{CUDA}; retrying with batch 16"
    assert job.recoveries == 0  # OOM_RETRIES bounds it, not MAX_RECOVERIES
    assert job.progress.message == "Out of memory at batch 32 \u2192 retrying with batch 16"
    assert job.cost.lost_s == 4.0  # the epoch redone is lost time, as after an interruption
    again = start(job, 20)
    assert again.current_attempt.batch_size == 16  # the next execution trains with it


def test_the_retries_are_counted_and_then_the_job_fails_with_a_hint():
    job = oom(running(32), 10)
    job = oom(start(job, 20), 30)
    assert job.status is JobStatus.QUEUED and job.batch_size == 8 and retries_used(job) == 1
    assert [(r.attempt.number, r.batch, r.smaller) for r in retries(job)] == [(1, 32, 16), (2, 16, 8)]
    job = oom(start(job, 40), 50)
    assert job.status is JobStatus.FAILED
    assert [a.batch_size for a in job.attempts] == [32, 16, 8]
    assert [a.end_reason for a in job.attempts] == [EndReason.OUT_OF_MEMORY] * 3
    assert job.error.reason == "out_of_memory"
    assert job.error.message == (f"out of memory at batch 8 after 2 retries with a smaller batch (OOM_RETRIES=2): "
                                 f"{CUDA}. Try: resubmit with batch_size 4 or less, a smaller model_params.input_size "
                                 "or architecture, or more memory.")
    assert job.progress.message == "Failed: out of memory at batch 8"
    assert len(retries(job)) == 2  # the last one ended the job: no retry


def test_at_batch_one_there_is_nothing_smaller_to_try():
    job = oom(running(1), 10)
    assert job.status is JobStatus.FAILED and job.attempts[0].batch_size == 1
    assert job.error.message.startswith("out of memory even at batch 1: ")
    assert "smaller model_params.input_size or architecture" in job.error.message
    assert failure_message(2, 1, 1, "x") == ("out of memory at batch 2 after 1 retry with a smaller batch "
                                             "(OOM_RETRIES=1): x. Try: resubmit with batch_size 1 or less, a "
                                             "smaller model_params.input_size or architecture, or more memory.")


def test_with_no_retries_allowed_it_fails_at_once():
    job = oom(running(32), 10, retries_allowed=0)
    assert job.status is JobStatus.FAILED and "OOM_RETRIES=0" in job.error.message and retries(job) == []


def test_a_cancelling_job_that_runs_out_of_memory_ends_cancelled():
    job = request_cancel(running(32), "ann", at(5))
    job = oom(job, 10)
    assert job.status is JobStatus.CANCELLED and job.batch_override is None and retries(job) == []


def test_a_stale_attempt_writes_nothing():
    job = running(32)
    assert after_out_of_memory(job, 2, at(10), RATES, 2, 3, detail=CUDA) is None
    assert oom(oom(job, 10), 11) is None  # queued: no live attempt to end


def test_status_shows_each_attempts_batch_and_the_batch_now():
    job = start(oom(running(32), 10), 20)
    view = job.status_view()
    assert view["batch_size"] == 16
    assert [(a["why"], a["batch_size"]) for a in view["attempts"]] == [("out_of_memory", 32), (None, 16)]


def test_the_setting_defaults_to_two_and_a_bad_value_names_it():
    from pydantic import ValidationError

    assert load_settings().OOM_RETRIES == 2
    assert load_settings(OOM_RETRIES=0).OOM_RETRIES == 0
    with pytest.raises(ValidationError, match="OOM_RETRIES"):
        load_settings(OOM_RETRIES=-1)


def test_laxai_status_names_the_batch_each_out_of_memory_execution_ran_at():
    from rich.console import Console

    from orchestrator.cli.views import summary

    view = start(oom(running(32), 10), 20).status_view()
    console = Console(width=200, record=True)
    console.print(summary(view))
    assert "#1 out_of_memory at batch 32, #2 " in console.export_text()


def test_the_worker_knows_an_out_of_memory_error_and_the_test_fault_raises_a_real_one():
    from types import SimpleNamespace

    import torch

    from worker import inject
    from worker.outcome import is_out_of_memory

    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory")) and is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("boom")) and not is_out_of_memory(ValueError("out of memory"))
    env = {inject.VARIABLE: "oom_when_batch_over:4,oom_from_epoch:2"}
    [(_, count), (event, fault)] = inject.callbacks(1, env)
    assert event == "on_train_batch_start"
    fault(SimpleNamespace(batch_size=8, epoch=0))  # epoch 1: not yet
    fault(SimpleNamespace(batch_size=4, epoch=1))  # fits
    with pytest.raises(torch.cuda.OutOfMemoryError, match="batch size 8"):
        fault(SimpleNamespace(batch_size=8, epoch=1))

"""Every transition, applied through ``JobStore.update`` on each backend.

Checks what a caller relies on: the returned job is what is stored, a refused
transition (None) stores nothing, and attempt numbers fence off stale workers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.job import EndReason, JobError, Progress
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import (
    claim,
    fail_queued,
    finish,
    heartbeat,
    record_execution,
    report_progress,
    request_cancel,
    requeue,
    worker_started,
)
from tests.contract.support import BASE_TIME, RATES, make_job

T0 = BASE_TIME
MAX_RECOVERIES = 2


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def apply(store, job, fn, kind="update"):
    """Run a transition through the store; check stored == returned, or nothing stored on None."""
    before = store.get(job.task_id)
    changed = store.update(job.task_id, fn, kind=kind)
    stored = store.get(job.task_id)
    if changed is None:
        assert stored == before
    else:
        assert stored == changed
        assert changed.version == before.version + 1
    return changed


@pytest.fixture
def queued(store):
    return store.create(make_job(epochs=10))[0]


@pytest.fixture
def running(store, queued):
    """Attempt 1 claimed, launched and started by its worker."""
    job = apply(store, queued, lambda j: claim(j, at(0), 600))
    job = apply(store, job, lambda j: record_execution(j, 1, "exec-1", at(1)))
    return apply(store, job, lambda j: worker_started(j, 1, at(2), 60, "cpu", 0))


@pytest.fixture
def cancelling(store, running):
    return apply(store, running, lambda j: request_cancel(j, "ann", at(10)))


def test_claim_opens_an_attempt_with_a_startup_lease(store, queued):
    job = apply(store, queued, lambda j: claim(j, at(0), 600), kind="status:running")
    assert job.status is JobStatus.RUNNING
    assert [a.number for a in job.attempts] == [1]
    assert job.lease.attempt == 1 and job.lease.expires_at == at(600)
    assert apply(store, job, lambda j: claim(j, at(1), 600)) is None  # only once


def test_record_execution_and_worker_started(store, queued):
    job = apply(store, queued, lambda j: claim(j, at(0), 600))
    job = apply(store, job, lambda j: record_execution(j, 1, "projects/p/executions/e-1", at(1)))
    assert job.current_attempt.execution == "projects/p/executions/e-1"
    job = apply(store, job, lambda j: worker_started(j, 1, at(2), 60, "cuda:0 NVIDIA L4", 0))
    assert job.current_attempt.started_at == at(2) and job.started_at == at(2)
    assert job.current_attempt.device == "cuda:0 NVIDIA L4"
    assert job.lease.expires_at == at(62)
    assert apply(store, job, lambda j: worker_started(j, 1, at(3), 60, "cpu", 0)) is None  # only once


def test_heartbeat_extends_the_lease(store, running):
    job = apply(store, running, lambda j: heartbeat(j, 1, at(30), 60))
    assert job.lease.expires_at == at(90) and job.lease.heartbeat_at == at(30)


def test_report_progress_stores_progress_and_metrics(store, running):
    progress = Progress(epoch=3, total_epochs=10, progress_percent=30.0, message="Epoch 3/10")
    job = apply(store, running, lambda j: report_progress(j, 1, progress, {"mAP50": 0.4}, at(40)), kind="progress")
    assert job.progress.epoch == 3 and job.progress.updated_at == at(40)
    assert job.metrics == {"mAP50": 0.4}
    job = apply(store, job, lambda j: report_progress(j, 1, progress, {"loss": 1.5}, at(41)))
    assert job.metrics == {"mAP50": 0.4, "loss": 1.5}


def test_cancel_of_a_queued_job_is_immediate(store, queued):
    job = apply(store, queued, lambda j: request_cancel(j, "ann", at(5)), kind="cancel")
    assert job.status is JobStatus.CANCELLED and job.cancel.by == "ann" and job.finished_at == at(5)
    assert apply(store, job, lambda j: request_cancel(j, "bob", at(6))) is None
    assert apply(store, job, lambda j: claim(j, at(7), 600)) is None


def test_cancel_of_a_running_job_asks_the_worker(store, cancelling):
    assert cancelling.status is JobStatus.CANCELLING and cancelling.cancel.by == "ann"
    assert apply(store, cancelling, lambda j: request_cancel(j, "bob", at(11))) is None
    assert apply(store, cancelling, lambda j: heartbeat(j, 1, at(12), 60)) is not None  # still its worker's


@pytest.mark.parametrize(
    ("reason", "status"),
    [(EndReason.COMPLETED, JobStatus.COMPLETED), (EndReason.FAILED, JobStatus.FAILED),
     (EndReason.TIMEOUT, JobStatus.FAILED), (EndReason.OUT_OF_MEMORY, JobStatus.FAILED)],
)
def test_finish_ends_a_running_job(store, running, reason, status):
    error = None if reason is EndReason.COMPLETED else JobError(reason=reason.value, message="it broke")
    job = apply(store, running, lambda j: finish(j, 1, reason, at(100), RATES, error=error,
                                                 artifacts={"best_checkpoint": "best.pt"}), kind="finish")
    assert job.status is status
    assert job.finished_at == at(100) and job.lease is None
    assert job.current_attempt.end_reason is reason
    assert job.cost.billed_seconds == 98.0  # started at 2s, ended at 100s
    assert job.artifacts.best_checkpoint == "best.pt"
    assert job.error == error
    assert apply(store, job, lambda j: finish(j, 1, reason, at(101), RATES)) is None  # terminal


def test_finish_cancelled_needs_a_cancel_request(store, running):
    assert apply(store, running, lambda j: finish(j, 1, EndReason.CANCELLED, at(50), RATES)) is None
    cancelling = apply(store, running, lambda j: request_cancel(j, "ann", at(51)))
    job = apply(store, cancelling, lambda j: finish(j, 1, EndReason.CANCELLED, at(52), RATES))
    assert job.status is JobStatus.CANCELLED


@pytest.mark.parametrize(("reason", "status"), [(EndReason.COMPLETED, JobStatus.COMPLETED),
                                                (EndReason.FAILED, JobStatus.FAILED)])
def test_a_cancelling_job_may_still_finish_on_its_own(store, cancelling, reason, status):
    job = apply(store, cancelling, lambda j: finish(j, 1, reason, at(20), RATES))
    assert job.status is status


@pytest.mark.parametrize(
    ("reason", "recoveries"),
    [(EndReason.INTERRUPTED, 1), (EndReason.LEASE_EXPIRED, 1), (EndReason.LAUNCH_FAILED, 0),
     (EndReason.CONTINUATION, 0)],
)
def test_requeue_sends_the_job_back_to_resume(store, running, reason, recoveries):
    job = apply(store, running, lambda j: requeue(j, 1, reason, at(50), RATES, MAX_RECOVERIES, end_epoch=4,
                                                  lost_seconds=12.0), kind="requeue")
    assert job.status is JobStatus.QUEUED
    assert job.recoveries == recoveries
    assert job.lease is None
    assert job.attempts[0].end_reason is reason and job.attempts[0].end_epoch == 4
    assert [j.task_id for j in store.queued()] == [job.task_id]
    again = apply(store, job, lambda j: claim(j, at(60), 600))
    assert [a.number for a in again.attempts] == [1, 2]


@pytest.mark.parametrize("reason", [EndReason.COMPLETED, EndReason.FAILED, EndReason.TIMEOUT, EndReason.CANCELLED])
def test_requeue_refuses_reasons_that_do_not_resume(store, running, reason):
    assert apply(store, running, lambda j: requeue(j, 1, reason, at(50), RATES, MAX_RECOVERIES)) is None


def test_requeue_of_a_cancelling_job_cancels_it(store, cancelling):
    job = apply(store, cancelling, lambda j: requeue(j, 1, EndReason.LEASE_EXPIRED, at(70), RATES, MAX_RECOVERIES))
    assert job.status is JobStatus.CANCELLED and job.finished_at == at(70)


def test_too_many_recoveries_fail_the_job(store, queued):
    job = queued
    for attempt in range(1, MAX_RECOVERIES + 2):
        job = apply(store, job, lambda j: claim(j, at(attempt * 100), 600))
        job = apply(store, job, lambda j, n=attempt: requeue(j, n, EndReason.INTERRUPTED, at(attempt * 100 + 50),
                                                             RATES, MAX_RECOVERIES))
        expected = JobStatus.QUEUED if attempt <= MAX_RECOVERIES else JobStatus.FAILED
        assert job.status is expected
    assert job.recoveries == MAX_RECOVERIES + 1
    assert job.error.reason == "too_many_recoveries"
    assert "MAX_RECOVERIES=2" in job.error.message
    # Planned continuations never count.
    fresh = store.create(make_job())[0]
    for attempt in range(1, MAX_RECOVERIES + 3):
        fresh = apply(store, fresh, lambda j: claim(j, at(attempt), 600))
        fresh = apply(store, fresh, lambda j, n=attempt: requeue(j, n, EndReason.CONTINUATION, at(attempt + 0.5),
                                                                 RATES, MAX_RECOVERIES))
    assert fresh.status is JobStatus.QUEUED and fresh.recoveries == 0


def test_a_stale_attempt_can_no_longer_write(store, running):
    job = apply(store, running, lambda j: requeue(j, 1, EndReason.LEASE_EXPIRED, at(100), RATES, MAX_RECOVERIES))
    job = apply(store, job, lambda j: claim(j, at(110), 600))
    progress = Progress(epoch=9, total_epochs=10)
    stale = [
        lambda j: record_execution(j, 1, "exec-old", at(111)),
        lambda j: worker_started(j, 1, at(111), 60, "cpu", 0),
        lambda j: heartbeat(j, 1, at(111), 60),
        lambda j: report_progress(j, 1, progress, {"mAP50": 0.9}, at(111)),
        lambda j: finish(j, 1, EndReason.COMPLETED, at(111), RATES),
        lambda j: requeue(j, 1, EndReason.INTERRUPTED, at(111), RATES, MAX_RECOVERIES),
    ]
    for fn in stale:
        assert apply(store, job, fn) is None
    assert apply(store, job, lambda j: heartbeat(j, 2, at(112), 60)) is not None  # the current attempt may
    assert apply(store, job, lambda j: heartbeat(j, 3, at(112), 60)) is None  # a future one may not


def test_fail_queued_only_fails_queued_jobs(store, running):
    error = JobError(reason="dataset_error", message="dataset gone")
    queued = store.create(make_job())[0]
    failed = apply(store, queued, lambda j: fail_queued(j, error, at(5)))
    assert failed.status is JobStatus.FAILED and failed.error == error and failed.finished_at == at(5)
    assert apply(store, running, lambda j: fail_queued(j, error, at(6))) is None
    assert apply(store, failed, lambda j: fail_queued(j, error, at(7))) is None

"""The dispatcher driving Cloud Run Jobs (the in-process fake) over a real store: continuations and cancels.

A job that outlives Cloud Run's per-task cap continues in a new execution; a
cancel that the worker ignores past CANCEL_GRACE_SECONDS is escalated to
CancelExecution of the live execution. The worker's side is applied as
worker/runner.py writes it (same transitions, same queue publish).
"""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from orchestrator.backends import open_backend
from orchestrator.config import Settings
from orchestrator.dispatcher import Dispatcher
from orchestrator.domain.job import EndReason, Origin, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import heartbeat, requeue, worker_started
from orchestrator.launchers.cloudrun import EXIT_CANCELLED, CloudRunJobLauncher
from orchestrator.service import JobService
from tests.fakes.fake_cloud_run import FakeCloudRun
from tests.gcp_fixtures import GCP_PROJECT, gcp_backend_values

BACKENDS = [pytest.param("local", id="sqlite"), pytest.param("gcp", id="firestore", marks=pytest.mark.gcp)]
TASK_TIMEOUT = 3600
JOB_PATH = f"projects/{GCP_PROJECT}/locations/us-central1/jobs/laxai-training-worker"


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=BACKENDS)
def world(request, tmp_path):
    # The write gap (1 s on gcp) is left out: this clock stands still, so a fresh job would never
    # come of age (the gap is tested in tests/unit/test_dispatcher.py and tests/gcp/test_push.py).
    values = dict(LAXAI_HOME=tmp_path / "home", GOOGLE_CLOUD_PROJECT=GCP_PROJECT, TASK_TIMEOUT=TASK_TIMEOUT,
                  LEASE_SECONDS=600, CANCEL_GRACE_SECONDS=60, MAX_RECOVERIES=0, STORE_WRITE_GAP=0)
    if request.param == "gcp":
        values.update(gcp_backend_values(request))
    settings = Settings(**values)
    with FakeCloudRun() as fake:
        launcher = CloudRunJobLauncher.from_settings(settings, channel=grpc.insecure_channel(fake.address))
        launcher.poll_interval = 0
        backend = open_backend(settings, launcher)
        clock = Clock()
        yield JobService(backend), Dispatcher(backend, clock=clock), fake, clock
        backend.close()


def run_env(request) -> dict[str, str]:
    (container,) = request.overrides.container_overrides
    return {var.name: var.value for var in container.env}


def drain_and_tick(dispatcher: Dispatcher) -> list[str]:
    """What the pull-mode loop does: take the wake-ups, run a pass, acknowledge. Returns their task ids."""
    queue = dispatcher.backend.queue
    messages = queue.pull(max_messages=10, timeout=5)
    dispatcher.tick()
    for message in messages:
        queue.ack(message.ack_id)
    return [m.task_id for m in messages]


def test_continuation_past_the_task_cap_then_cancel_escalation(world):
    service, dispatcher, fake, clock = world
    store, settings = service.store, service.settings
    rates = settings.rates()
    job, _ = service.submit(JobSpec(tenant_id="team-a", training_params={"epochs": 10}), Origin())
    task = job.task_id

    # Submit -> one RunJob for attempt 1, capped at TASK_TIMEOUT, one task.
    assert drain_and_tick(dispatcher) == [task]
    (first,) = fake.run_requests
    assert first.name == JOB_PATH
    assert run_env(first) == {"TASK_ID": task, "ATTEMPT": "1", "TASK_TIMEOUT": str(TASK_TIMEOUT)}
    assert first.overrides.task_count == 1 and first.overrides.timeout.total_seconds() == TASK_TIMEOUT
    job = store.get(task)
    assert job.status is JobStatus.RUNNING and job.current_attempt.execution == fake.executions[0]

    # The worker starts, trains 4 epochs and stops before the cap: a continuation, as worker/runner.py does it.
    store.update(task, lambda j: worker_started(j, 1, clock(), settings.LEASE_SECONDS, "cuda:0 NVIDIA L4", 0),
                 kind="worker_started")
    clock.advance(TASK_TIMEOUT - settings.TASK_TIMEOUT_MARGIN)
    store.update(task, lambda j: heartbeat(j, 1, clock(), settings.LEASE_SECONDS), kind="heartbeat")
    assert dispatcher.tick() == []  # running within its lease and its execution: nothing to do
    requeued = store.update(task, lambda j: requeue(
        j, 1, EndReason.CONTINUATION, clock(), rates, settings.MAX_RECOVERIES,
        detail=f"planned stop before the {settings.TASK_TIMEOUT:g} s execution limit", end_epoch=4,
        artifacts={"last_checkpoint": f"gs://bucket/{task}/last.pt"}), kind="status:queued")
    assert requeued.status is JobStatus.QUEUED and requeued.recoveries == 0  # MAX_RECOVERIES=0 does not apply
    service.backend.queue.publish(task, reason="continuation")
    fake.finish(fake.executions[0], "succeeded")  # the worker exited 0

    # The wake-up -> RunJob for attempt 2, a new execution.
    assert drain_and_tick(dispatcher) == [task]
    assert [run_env(r)["ATTEMPT"] for r in fake.run_requests] == ["1", "2"]
    assert run_env(fake.run_requests[1])["TASK_ID"] == task
    job = store.get(task)
    second_execution = fake.executions[1]
    assert [a.end_reason for a in job.attempts] == [EndReason.CONTINUATION, None]
    assert job.attempts[1].execution == second_execution
    resumed = store.update(task, lambda j: worker_started(j, 2, clock(), settings.LEASE_SECONDS, "cuda:0 NVIDIA L4",
                                                          4), kind="worker_started")
    assert resumed.attempts[1].start_epoch == 4  # from the checkpoint attempt 1 left

    # Cancel: the worker ignores it; within the grace nothing is stopped, past it the execution is cancelled.
    service.cancel("team-a", task, by="slack:U1")
    assert store.get(task).status is JobStatus.CANCELLING
    cancel_at = store.get(task).cancel.at
    clock.now = cancel_at + timedelta(seconds=settings.CANCEL_GRACE_SECONDS - 1)
    dispatcher.tick()
    assert fake.cancel_requests == []
    clock.now = cancel_at + timedelta(seconds=settings.CANCEL_GRACE_SECONDS + 1)
    dispatcher.tick()
    assert [r.name for r in fake.cancel_requests] == [second_execution]
    job = store.get(task)
    assert job.status is JobStatus.CANCELLED
    assert [a.end_reason for a in job.attempts] == [EndReason.CONTINUATION, EndReason.CANCELLED]
    assert "cancel grace" in job.attempts[1].detail
    assert dispatcher.backend.launcher.exited(second_execution) == EXIT_CANCELLED
    assert len(fake.run_requests) == 2  # and nothing was launched again


def test_an_execution_that_ends_without_closing_its_attempt_is_recovered(world):
    """GetExecution says the execution failed (e.g. out of memory) while the job still reads running."""
    service, dispatcher, fake, clock = world
    service.settings.MAX_RECOVERIES = 1
    job, _ = service.submit(JobSpec(tenant_id="team-a"), Origin())
    dispatcher.tick()
    store, settings = service.store, service.settings
    store.update(job.task_id, lambda j: worker_started(j, 1, clock(), settings.LEASE_SECONDS, "gpu", 0))
    dispatcher.tick()
    assert store.get(job.task_id).status is JobStatus.RUNNING  # the execution runs: lease still valid
    fake.finish(fake.executions[0], "failed")
    dispatcher.tick()  # requeued (exit code 1 seen), then launched again as attempt 2
    job = store.get(job.task_id)
    assert job.attempts[0].end_reason is EndReason.LEASE_EXPIRED and "code 1" in job.attempts[0].detail
    assert [run_env(r)["ATTEMPT"] for r in fake.run_requests] == ["1", "2"]
    assert fake.cancel_requests == []  # nothing to stop: it had ended

"""A failing CancelExecution, through the real dispatcher and the Cloud Run launcher (the in-process fake).

The worker ignores a cancel past CANCEL_GRACE_SECONDS, so the dispatcher stops its
execution with CancelExecution, and the fake Cloud Run refuses (``fail_with``). The
job must stay cancelling while the execution may still bill its GPU, the call must
be asked again with backoff (a gRPC interceptor on the launcher's channel times
every call, failed ones included), and the job ends only once the execution is
seen stopped, or at its lease. Both on the real clock, with short settings.
"""

from __future__ import annotations

import time
from datetime import timedelta

import grpc
import pytest

from bot import plan
from orchestrator.backends import open_backend
from orchestrator.config import Settings
from orchestrator.dispatcher import Dispatcher
from orchestrator.domain.job import EndReason, Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import worker_started
from orchestrator.launchers.cloudrun import CloudRunJobLauncher
from orchestrator.service import JobService
from tests.fakes.fake_cloud_run import FakeCloudRun
from tests.gcp_fixtures import GCP_PROJECT, gcp_backend_values

BACKENDS = [pytest.param("local", id="sqlite"), pytest.param("gcp", id="firestore", marks=pytest.mark.gcp)]
CANCEL = "/google.cloud.run.v2.Executions/CancelExecution"
RETRY = 0.3  # STOP_RETRY_SECONDS: the waits are 0.3, 0.6, then at most STOP_RETRY_MAX_SECONDS
RETRY_MAX = 0.8
SLACK = 0.15


class CallTimes(grpc.UnaryUnaryClientInterceptor):
    """When each call of each method left the launcher, and how it ended."""

    def __init__(self):
        self.calls: list[tuple[str, float, grpc.StatusCode]] = []

    def intercept_unary_unary(self, continuation, client_call_details, request):
        sent = time.monotonic()
        outcome = continuation(client_call_details, request)
        self.calls.append((client_call_details.method, sent, outcome.code()))
        return outcome

    def of(self, method: str) -> list[tuple[float, grpc.StatusCode]]:
        return [(at, code) for name, at, code in self.calls if name == method]


@pytest.fixture(params=BACKENDS)
def world(request, tmp_path):
    values = dict(LAXAI_HOME=tmp_path / "home", GOOGLE_CLOUD_PROJECT=GCP_PROJECT, LEASE_SECONDS=3.0,
                  CANCEL_GRACE_SECONDS=0.2, STOP_RETRY_SECONDS=RETRY, STOP_RETRY_MAX_SECONDS=RETRY_MAX,
                  STORE_WRITE_GAP=0)
    if request.param == "gcp":
        values.update(gcp_backend_values(request))
    settings = Settings(**values)
    calls = CallTimes()
    with FakeCloudRun() as fake:
        channel = grpc.intercept_channel(grpc.insecure_channel(fake.address), calls)
        launcher = CloudRunJobLauncher.from_settings(settings, channel=channel)
        launcher.poll_interval = 0
        backend = open_backend(settings, launcher)
        yield JobService(backend), Dispatcher(backend), fake, calls
        backend.close()


def running_job_whose_worker_ignores_cancel(service: JobService, dispatcher: Dispatcher) -> tuple[str, str]:
    """A launched job whose worker started (lease LEASE_SECONDS) and was asked to cancel; its execution."""
    job, _ = service.submit(JobSpec(tenant_id="team-a", training_params={"epochs": 10}), Origin())
    task = job.task_id
    dispatcher.tick()
    execution = service.store.get(task).current_attempt.execution
    assert execution, "the job was not launched"
    lease = service.settings.LEASE_SECONDS
    service.store.update(task, lambda j: worker_started(j, 1, dispatcher.clock(), lease, "cuda:0 NVIDIA L4", 0),
                         kind="worker_started")
    service.cancel("team-a", task, by="U0ALICE")
    return task, execution


def tick_until(dispatcher: Dispatcher, done, timeout: float, on_tick=lambda: None) -> list[JobStatus]:
    """Dispatcher passes every 50 ms until ``done()`` (or ``timeout``); what ``on_tick`` gave after each."""
    seen = []
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        dispatcher.tick()
        seen.append(on_tick())
        time.sleep(0.05)
    return seen


def ended(service: JobService, task: str):
    return lambda: service.store.get(task).status.is_terminal()


def test_cancel_execution_fails_twice_then_works(world):
    service, dispatcher, fake, calls = world
    task, execution = running_job_whose_worker_ignores_cancel(service, dispatcher)
    fake.fail_with = grpc.StatusCode.UNAVAILABLE

    def recover_after_two_failures() -> JobStatus:
        if len(calls.of(CANCEL)) >= 2:
            fake.fail_with = None
        return service.store.get(task).status

    seen = tick_until(dispatcher, ended(service, task), timeout=15, on_tick=recover_after_two_failures)

    cancels = calls.of(CANCEL)
    assert [code for _, code in cancels] == [grpc.StatusCode.UNAVAILABLE] * 2 + [grpc.StatusCode.OK]
    # Asked again with backoff (0.3 s, then 0.6 s), not once per 50 ms pass. The waits count from the
    # start of the pass that failed, the times here from each call: SLACK allows for what came before it.
    (first, _), (second, _), (third, _) = cancels
    assert second - first >= RETRY - SLACK and third - second >= 2 * RETRY - SLACK
    # Cancelling all the while the execution could still bill; cancelled once it is seen stopped.
    assert seen[-1] is JobStatus.CANCELLED and set(seen[:-1]) == {JobStatus.CANCELLING}
    assert len(seen) >= 3  # at least the passes of the two failed calls, then the one that worked
    assert fake.states[execution] == "cancelled" and [r.name for r in fake.cancel_requests] == [execution]
    assert fake.executions == [execution]  # nothing else launched: no second, orphaned execution
    job = service.store.get(task)
    attempt = job.current_attempt
    assert attempt.end_reason is EndReason.CANCELLED and "cancel grace" in attempt.detail
    assert attempt.stopped_at is not None and attempt.stopped_at >= job.cancel.at + timedelta(seconds=0.2)
    assert job.cost.billed_seconds == pytest.approx((attempt.stopped_at - attempt.started_at).total_seconds(), abs=1e-3)
    # The thread's final reply says when the GPU stopped billing.
    reply = plan.render(job, "final")
    assert f"GPU stopped billing at <!date^{int(attempt.stopped_at.timestamp())}^" in reply.blocks[0]["text"]["text"]
    assert f"GPU stopped billing at {attempt.stopped_at:%H:%M:%S} UTC" in reply.text


def test_cancel_execution_failing_for_ever_ends_the_job_at_its_lease(world):
    service, dispatcher, fake, calls = world
    task, execution = running_job_whose_worker_ignores_cancel(service, dispatcher)
    expires_at = service.store.get(task).lease.expires_at
    fake.fail_with = grpc.StatusCode.UNAVAILABLE

    seen = tick_until(dispatcher, ended(service, task), timeout=15, on_tick=lambda: service.store.get(task).status)

    job = service.store.get(task)
    assert seen[-1] is JobStatus.CANCELLED and set(seen[:-1]) == {JobStatus.CANCELLING}
    assert job.finished_at > expires_at  # not a moment before its lease ran out
    attempt = job.current_attempt
    assert attempt.end_reason is EndReason.LEASE_EXPIRED and attempt.stopped_at is None
    assert "failed stop calls" in attempt.detail and "UNAVAILABLE" in attempt.detail
    failed = calls.of(CANCEL)
    assert 3 <= len(failed) <= 6 and {code for _, code in failed} == {grpc.StatusCode.UNAVAILABLE}
    assert len(seen) > len(failed)  # more passes than calls: the backoff, not every pass, decides
    assert "not confirmed stopped" in plan.render(job, "final").text
    assert fake.states[execution] == "running"

    # The job is over; its execution is not forgotten: once Cloud Run answers again it is cancelled.
    fake.fail_with = None
    tick_until(dispatcher, lambda: fake.states[execution] == "cancelled", timeout=5)
    assert fake.states[execution] == "cancelled" and [r.name for r in fake.cancel_requests] == [execution]
    assert dispatcher.recovery.stopper.pending() == []
    assert fake.executions == [execution] and service.store.get(task).status is JobStatus.CANCELLED


def test_the_cancel_reply_says_when_billing_stopped_whoever_stopped_it():
    """The other two ways a cancel ends: the worker stops itself, or the job never started."""
    from tests.slack import jobflow

    itself = jobflow.cancel(jobflow.start(jobflow.make_job()))
    ended_at = itself.current_attempt.ended_at
    assert itself.current_attempt.stopped_at is None
    assert f"GPU stopped billing at {ended_at:%H:%M:%S} UTC (the worker stopped itself)" in \
        plan.render(itself, "final").text
    queued = jobflow.cancel(jobflow.make_job())
    assert "it never started" in plan.render(queued, "final").text
    assert "stopped billing" not in plan.render(itself, "card").text  # only the final reply carries it
    assert "stopped billing" not in plan.render(jobflow.complete(jobflow.start(jobflow.make_job())), "final").text

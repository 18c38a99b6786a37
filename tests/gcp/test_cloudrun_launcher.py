"""CloudRunJobLauncher against an in-process fake of the Cloud Run Admin API (no emulator exists)."""

from __future__ import annotations

import grpc
import pytest

from orchestrator.config import Settings
from orchestrator.domain.job import Job
from orchestrator.domain.spec import JobSpec
from orchestrator.launchers.base import LaunchError
from orchestrator.launchers.cloudrun import EXIT_CANCELLED, CloudRunJobLauncher
from tests.fakes.fake_cloud_run import FakeCloudRun

JOB_PATH = "projects/proj-1/locations/europe-west4/jobs/laxai-training-worker"


@pytest.fixture
def fake():
    with FakeCloudRun() as server:
        yield server


def make_launcher(fake: FakeCloudRun, task_timeout: float = 3600) -> CloudRunJobLauncher:
    settings = Settings(GOOGLE_CLOUD_PROJECT="proj-1", CLOUD_REGION="europe-west4", TASK_TIMEOUT=task_timeout)
    return CloudRunJobLauncher.from_settings(settings, channel=grpc.insecure_channel(fake.address))


def job() -> Job:
    return Job(tenant_id="team-a", spec=JobSpec(tenant_id="team-a"))


def env_of(request) -> dict[str, str]:
    (container,) = request.overrides.container_overrides
    return {var.name: var.value for var in container.env}


def test_launch_runs_the_worker_job_with_this_attempt(fake):
    launcher = make_launcher(fake)
    the_job = job()
    execution = launcher.launch(the_job, 3)
    (request,) = fake.run_requests
    assert request.name == JOB_PATH
    # TASK_TIMEOUT too: the worker plans against the limit this execution runs under.
    assert env_of(request) == {"TASK_ID": the_job.task_id, "ATTEMPT": "3", "TASK_TIMEOUT": "3600"}
    assert request.overrides.task_count == 1
    assert request.overrides.timeout.total_seconds() == 3600
    assert execution == f"{JOB_PATH}/executions/laxai-training-worker-00001"
    launcher.close()


def test_no_timeout_override_when_task_timeout_is_unset(fake):
    launcher = make_launcher(fake, task_timeout=0)
    launcher.launch(job(), 1)
    overrides = fake.run_requests[0].overrides
    assert overrides.task_count == 1
    assert not type(overrides).pb(overrides).HasField("timeout")
    assert "TASK_TIMEOUT" not in env_of(fake.run_requests[0])  # the job's own setting applies
    launcher.close()


def test_each_launch_gets_its_own_execution(fake):
    launcher = make_launcher(fake)
    first, second = launcher.launch(job(), 1), launcher.launch(job(), 1)
    assert first != second and len(fake.run_requests) == 2
    launcher.close()


def test_stop_cancels_the_execution_by_name(fake):
    launcher = make_launcher(fake)
    execution = launcher.launch(job(), 1)
    launcher.stop(execution)
    assert [r.name for r in fake.cancel_requests] == [execution]
    launcher.close()


def test_stop_of_an_unknown_execution_is_quiet(fake):
    launcher = make_launcher(fake)
    launcher.stop(f"{JOB_PATH}/executions/gone")  # NOT_FOUND: already gone, nothing to do
    launcher.stop("local:1234")  # not a Cloud Run handle: never sent
    assert [r.name for r in fake.cancel_requests] == [f"{JOB_PATH}/executions/gone"]
    launcher.close()


def test_refused_launch_raises_launch_error(fake):
    launcher = make_launcher(fake)
    fake.fail_with = grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(LaunchError, match="PERMISSION_DENIED|Permission"):
        launcher.launch(job(), 1)
    launcher.close()


def test_exited_reads_the_execution_state(fake):
    launcher = make_launcher(fake)
    launcher.poll_interval = 0
    running, ok, failed, cancelled = (launcher.launch(job(), 1) for _ in range(4))
    fake.finish(ok, "succeeded")
    fake.finish(failed, "failed")
    launcher.stop(cancelled)  # CancelExecution cancels it on the fake, as on Cloud Run
    assert launcher.exited(running) is None
    assert launcher.exited(ok) == 0
    assert launcher.exited(failed) == 1
    assert launcher.exited(cancelled) == EXIT_CANCELLED
    assert [r.name for r in fake.get_requests] == [running, ok, failed, cancelled]
    launcher.close()


def test_exited_rereads_a_running_execution_at_most_every_poll_interval(fake):
    launcher = make_launcher(fake)
    launcher.poll_interval = 3600
    execution = launcher.launch(job(), 1)
    assert launcher.exited(execution) is None
    fake.finish(execution, "succeeded")
    assert launcher.exited(execution) is None  # not re-read yet: the answer is at most poll_interval old
    assert len(fake.get_requests) == 1
    launcher.poll_interval = 0
    assert launcher.exited(execution) == 0
    assert launcher.exited(execution) == 0  # a final answer is kept, not read again
    assert len(fake.get_requests) == 2
    launcher.close()


def test_exited_reads_unknown_or_unreadable_executions_as_running(fake):
    launcher = make_launcher(fake)
    launcher.poll_interval = 0
    execution = launcher.launch(job(), 1)
    assert launcher.exited(f"{JOB_PATH}/executions/gone") is None  # NOT_FOUND: the lease decides
    assert launcher.exited("local:1234") is None  # not a Cloud Run handle: never sent
    fake.fail_with = grpc.StatusCode.UNAVAILABLE
    assert launcher.exited(execution) is None
    fake.fail_with = None
    fake.finish(execution, "failed")
    assert launcher.exited(execution) == 1
    launcher.close()

"""The Cloud Run continuation path for real: the dispatcher, the Cloud Run launcher and real workers.

The dispatcher runs in this process on the Firestore and Pub/Sub emulators; its
``CloudRunJobLauncher`` speaks gRPC to the fake Cloud Run (tests/fakes/fake_cloud_run.py),
which starts a real worker per RunJob with the job's environment and the request's
overrides, and stops it at the task timeout as Cloud Run does (SIGTERM, then SIGKILL after
the grace). The job's command is ``python -m worker``'s ``main`` behind a small script that
paces its stop checks and can make one attempt overrun (INJECTING_WORKER): everything else is
the real worker, training tiny real YOLO models. Checkpoints go to the shared LAXAI_HOME (the
artifact store when there is no bucket), so a new execution resumes from what the last one left.

The job's environment as deployed says TASK_TIMEOUT=3600 while the service runs executions
under a much shorter one: the worker only stops in time because the launcher's overrides
carry the execution's real TASK_TIMEOUT.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml

from orchestrator.backends import open_backend
from orchestrator.config import REPO_ROOT, Settings
from orchestrator.dispatcher import Dispatcher
from orchestrator.domain.job import EndReason, Job, Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.launchers.cloudrun import CloudRunJobLauncher
from orchestrator.service import JobService
from tests.fakes.fake_cloud_run import FakeCloudRun, WorkerJob
from tests.gcp_fixtures import GCP_PROJECT
from tests.support.serve import tiny_job

pytestmark = [pytest.mark.slow, pytest.mark.gcp]

DEPLOYED_TASK_TIMEOUT = "3600"  # what the job's own environment says (cloudbuild.yaml's default)
DATASET = "synthetic:16"
TERMINAL = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}

# `python -m worker` with faults injected from the environment (the fake's job runs it instead):
# SETUP_SECONDS, PACE_SECONDS: the training callbacks' first stop check (before the first batch)
#   comes no sooner than SETUP_SECONDS after the process started, and each later one (epoch start,
#   every batch, epoch end) no sooner than PACE_SECONDS after the last. Sleeping costs no CPU, so where the deadline falls in
#   the epochs no longer depends on the machine's load (start-up alone takes 10-50 s on a busy box);
# OVERRUN_ATTEMPT: in this attempt the worker ignores its continuation deadline and SIGTERM, as one
#   stuck in a batch would, so only the task timeout's SIGKILL ends it.
INJECTING_WORKER = '''
import os, sys, time
from worker import stop
from worker.__main__ import main

started, last = time.monotonic(), []
setup, pace = float(os.environ.get("SETUP_SECONDS", "0")), float(os.environ.get("PACE_SECONDS", "0"))
check, reason = stop.StopCheck.check, stop.StopCheck.reason

def paced(self, *args, **kwargs):
    if sys._getframe(1).f_code.co_name.startswith("_on_"):  # training callbacks, not dataset generation
        time.sleep(max(0.0, (last[-1] + pace if last else started + setup) - time.monotonic()))
        last.append(time.monotonic())
    check(self, *args, **kwargs)

def stuck(self, *args, **kwargs):
    found = reason(self, *args, **kwargs)
    return None if found in (stop.StopReason.CONTINUATION, stop.StopReason.SIGTERM) else found

stop.StopCheck.check = paced
if os.environ["ATTEMPT"] == os.environ.get("OVERRUN_ATTEMPT"):
    stop.StopCheck.reason = stuck
sys.exit(main([]))
'''


@dataclass
class Cloud:
    service: JobService
    dispatcher: Dispatcher
    fake: FakeCloudRun
    home: Path

    @property
    def store(self):
        return self.service.store

    def submit(self, epochs: int) -> str:
        body = tiny_job(training_params={"epochs": epochs}, dataset=DATASET)
        job, _ = self.service.submit(JobSpec(tenant_id="team-a", **body), Origin())
        return job.task_id

    def wait(self, task: str, until: Callable[[Job], bool], timeout: float) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.store.get(task)
            if until(job):
                return job
            time.sleep(0.2)
        raise AssertionError(f"{task} not there in {timeout} s: {self.describe(task)}")

    def describe(self, task: str) -> str:
        job = self.store.get(task)
        logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
                         for p in sorted((self.home / "executions").glob("*.log")))
        attempts = [a.model_dump(mode="json") for a in job.attempts]
        return f"{job.status} {job.progress} {attempts}\nexecutions: {self.fake.ended}\n{logs}"


def worker_env(home: Path, names, margin: float) -> dict[str, str]:
    """The worker job's environment as deployment sets it (here: on the emulators, on the CPU)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LAXAI_"))}
    return {**inherited, "LAXAI_BACKEND": "gcp", "LAXAI_HOME": str(home), "GOOGLE_CLOUD_PROJECT": GCP_PROJECT,
            "TRAINING_TOPIC": names.topic, "TASK_TIMEOUT": DEPLOYED_TASK_TIMEOUT,
            "TASK_TIMEOUT_MARGIN": str(margin), "REQUIRE_GPU": "0", "YOLO_DEVICE": "cpu",
            "WANDB_MODE": "offline", "PROGRESS_INTERVAL": "0.5", "LEASE_SECONDS": "20", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def cloud(tmp_path, clean_firestore, pubsub_names, pubsub_emulator) -> Iterator[Callable[..., Cloud]]:
    """cloud(task_timeout, margin, grace, **faults) -> a started dispatcher and a fake Cloud Run whose
    job runs INJECTING_WORKER with ``faults`` (PACE_SECONDS, OVERRUN_ATTEMPT) in its environment."""
    opened: list[tuple[FakeCloudRun, Dispatcher]] = []
    script = tmp_path / "injecting_worker.py"
    script.write_text(INJECTING_WORKER)

    def make(task_timeout: float, margin: float, grace: float, **faults: str) -> Cloud:
        home = tmp_path / "home"
        values = dict(LAXAI_HOME=home, LAXAI_BACKEND="gcp", GOOGLE_CLOUD_PROJECT=GCP_PROJECT,
                      TRAINING_TOPIC=pubsub_names.topic, TRAINING_SUBSCRIPTION=pubsub_names.subscription,
                      DEAD_LETTER_TOPIC=pubsub_names.dead_letter_topic, TASK_TIMEOUT=task_timeout,
                      TASK_TIMEOUT_MARGIN=margin, LEASE_SECONDS=20, DISPATCH_INTERVAL=0.2, MAX_RECOVERIES=1)
        job = WorkerJob(env={**worker_env(home, pubsub_names, margin), **faults}, grace=grace,
                        command=(sys.executable, str(script)), log_dir=home / "executions")
        fake = FakeCloudRun(worker=job).start()
        launcher = CloudRunJobLauncher.from_settings(Settings(**values), channel=grpc.insecure_channel(fake.address))
        launcher.poll_interval = 0.5
        backend = open_backend(Settings(**values), launcher)
        dispatcher = Dispatcher(backend)
        dispatcher.start()
        opened.append((fake, dispatcher))
        return Cloud(JobService(backend), dispatcher, fake, home)

    yield make
    for fake, dispatcher in opened:
        dispatcher.stop()
        fake.stop()
        dispatcher.backend.close()


def runs_of(fake: FakeCloudRun, task: str) -> list[tuple[dict[str, str], str]]:
    """(container override env, execution name) of each RunJob for ``task``, in order."""
    runs = [({v.name: v.value for v in r.overrides.container_overrides[0].env}, name)
            for r, name in zip(fake.run_requests, fake.executions)]
    return [(env, name) for env, name in runs if env["TASK_ID"] == task]


def test_a_job_longer_than_the_task_timeout_completes_over_several_real_executions(cloud):
    """The training callbacks' stop checks come at 45, 50, 55, 60, 65 s (epoch 1 ends) and 70, 75,
    80 s (epoch 2's start and batches) after the process starts, later by up to 12 s when start-up is
    slower (a busy 2-core machine). The deadline (92 - 15 = 77 s) falls between epoch 1's end and
    epoch 2's last batch: one epoch per execution, so a job of 2 epochs takes two executions. The
    margin covers the last batch, the closing write and the process's exit on a busy machine."""
    task_timeout, margin, epochs = 92.0, 15.0, 2
    world = cloud(task_timeout, margin, grace=10.0, SETUP_SECONDS="45", PACE_SECONDS="5")
    task = world.submit(epochs)
    job = world.wait(task, lambda j: j.status in TERMINAL, timeout=400)
    detail = world.describe(task)
    assert job.status is JobStatus.COMPLETED, detail

    # Several executions, each started by a real RunJob with its attempt and the execution's real timeout.
    attempts, fake, runs = job.attempts, world.fake, runs_of(world.fake, task)
    assert len(attempts) >= 2, detail
    assert [a.end_reason for a in attempts] == [EndReason.CONTINUATION] * (len(attempts) - 1) + [EndReason.COMPLETED]
    assert [env["ATTEMPT"] for env, _ in runs] == [str(n) for n in range(1, len(attempts) + 1)]
    assert [a.execution for a in attempts] == [name for _, name in runs]
    for env, name in runs:  # the worker saw the execution's timeout, not the 3600 deployed with the job
        assert env["TASK_TIMEOUT"] == fake.envs[name]["TASK_TIMEOUT"] == "92"

    # Each execution stopped itself before the timeout and exited 0; the epochs went on where they stopped.
    for _, name in runs:
        ended = fake.wait_ended(name)
        assert ended.code == 0 and not ended.timed_out and ended.seconds < task_timeout, (name, ended, detail)
    assert attempts[0].start_epoch == 0
    for before, after in zip(attempts, attempts[1:]):
        assert after.start_epoch == before.end_epoch > before.start_epoch, detail
    assert attempts[-1].end_epoch == job.progress.epoch == epochs
    assert job.recoveries == 0


def test_a_worker_overrunning_the_task_timeout_is_killed_recovered_and_counted(cloud):
    """The first execution ignores its deadline and SIGTERM; a Cloud Run grace of 2 s instead of 10
    keeps the test short. (Resuming from a checkpoint is the test above.)"""
    task_timeout, margin, grace = 40.0, 15.0, 2.0
    world = cloud(task_timeout, margin, grace, OVERRUN_ATTEMPT="1")
    task = world.submit(epochs=200)
    job = world.wait(task, lambda j: len(j.attempts) >= 2 and j.attempts[1].started_at is not None,
                     timeout=task_timeout + 120)
    detail = world.describe(task)
    (first, killed), (second, relaunched) = runs_of(world.fake, task)[:2]

    # Attempt 1 ran past its deadline and ignored SIGTERM: killed at the timeout, after the grace.
    ended = world.fake.wait_ended(killed)
    assert ended.timed_out and ended.code == -9, (ended, detail)
    assert task_timeout + grace <= ended.seconds < task_timeout + grace + 3, (ended, detail)
    assert "SIGTERM received" in (world.home / "executions" / f"{killed.rsplit('/', 1)[-1]}.log").read_text()

    # Read as a lost execution, counted, and relaunched by a real RunJob whose worker took attempt 2.
    lost, relaunch = job.attempts[:2]
    assert lost.started_at is not None and lost.end_reason is EndReason.LEASE_EXPIRED, detail
    assert "code 1" in lost.detail and job.recoveries == 1, detail
    assert (first["ATTEMPT"], second["ATTEMPT"]) == ("1", "2")
    assert relaunch.execution == relaunched and relaunch.device == "cpu", detail


def test_the_worker_job_and_the_service_are_deployed_with_one_task_timeout():
    """The worker job's --task-timeout, its TASK_TIMEOUT and the service's (whose launcher passes it to
    every execution) come from one substitution: an execution started without overrides (by hand,
    `gcloud run jobs execute`) still plans its continuation against the timeout it runs under."""
    steps = {step["id"]: " ".join(step["args"])
             for step in yaml.safe_load((REPO_ROOT / "cloudbuild.yaml").read_text())["steps"]}
    worker, service = steps["deploy-worker"], steps["deploy-service"]
    assert "--task-timeout=${_TASK_TIMEOUT}s" in worker
    for step in (worker, service):
        assert re.search(r'[|"]TASK_TIMEOUT=\$\{_TASK_TIMEOUT\}[|"]', step), step
    assert "_TASK_TIMEOUT=$TASK_TIMEOUT" in (REPO_ROOT / "deploy.sh").read_text()

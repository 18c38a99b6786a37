"""Cloud Run Jobs launcher: one execution of ``WORKER_JOB_NAME`` per attempt.

``launch`` calls ``Jobs.RunJob`` on ``projects/P/locations/R/jobs/WORKER_JOB_NAME``
with overrides: container env ``TASK_ID`` and ``ATTEMPT`` (the worker reads them),
``task_count`` 1, and, when ``TASK_TIMEOUT`` is set, ``timeout`` = ``TASK_TIMEOUT``
and the env ``TASK_TIMEOUT`` too: the worker plans its continuation against the
limit its execution really has, not a value deployed with the job that may differ
(it would overrun, be killed and recovered until the job fails). It returns
the execution's name from the long-running operation's metadata at once; it never
waits for the operation, which lasts as long as the training run (hours).
``stop`` calls ``Executions.CancelExecution`` and does not wait either.
``exited`` reads the execution (``Executions.GetExecution``): finished ones give
an exit code (0 succeeded, 1 failed, ``EXIT_CANCELLED`` cancelled), running ones
None. The dispatcher asks about every active job on every pass, so a running
execution is re-read at most every ``poll_interval`` seconds (API read quota),
and an API error or a missing execution reads as "still running": the lease
expiry then decides, as it would without this answer.

The job itself (image, GPU, service account, env such as ``LAXAI_BACKEND=gcp``)
is defined once by deployment; only the per-attempt values are overridden here.
``from_settings`` takes an optional gRPC ``channel`` (tests point it at the
in-process fake in ``tests/fakes/fake_cloud_run.py``) or a ``transport`` name.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import run_v2

from orchestrator.domain.job import Job
from orchestrator.launchers.base import Launcher, LaunchError

log = logging.getLogger(__name__)

RPC_TIMEOUT = 60.0
# If the first answer carries no execution name yet, re-read the operation this long.
METADATA_WAIT = 10.0
POLL_INTERVAL = 10.0  # seconds between reads of one running execution
EXIT_CANCELLED = -15  # what Popen reports for a process stopped by SIGTERM
KEPT = 1000  # executions remembered (last read, final exit codes), oldest forgotten first


class CloudRunJobLauncher(Launcher):
    """Starts and cancels executions of one Cloud Run job."""

    def __init__(self, jobs: Any, executions: Any, project: str, region: str, job_name: str,
                 task_timeout: float = 0.0, poll_interval: float = POLL_INTERVAL):
        self.jobs = jobs
        self.executions = executions
        self.job_path = f"projects/{project}/locations/{region}/jobs/{job_name}"
        self.task_timeout = task_timeout
        self.poll_interval = poll_interval
        self._read_at: dict[str, float] = {}  # running executions: when last read
        self._exits: dict[str, int] = {}  # finished executions: their exit code
        self._guard = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, transport: str | None = None, channel: Any = None) -> CloudRunJobLauncher:
        """Clients for the configured job; ``channel`` (a grpc.Channel) or ``transport``
        ("grpc", "rest") override how they connect. Credentials come from the
        environment (Application Default Credentials) unless a channel is given."""
        if channel is not None:
            from google.cloud.run_v2.services.executions.transports import ExecutionsGrpcTransport
            from google.cloud.run_v2.services.jobs.transports import JobsGrpcTransport

            jobs = run_v2.JobsClient(transport=JobsGrpcTransport(channel=channel))
            executions = run_v2.ExecutionsClient(transport=ExecutionsGrpcTransport(channel=channel))
        else:
            jobs = run_v2.JobsClient(transport=transport)
            executions = run_v2.ExecutionsClient(transport=transport)
        return cls(jobs, executions, settings.GOOGLE_CLOUD_PROJECT, settings.CLOUD_REGION,
                   settings.WORKER_JOB_NAME, settings.TASK_TIMEOUT)

    def request(self, job: Job, attempt: int) -> run_v2.RunJobRequest:
        """The RunJob request for one attempt of a job."""
        env = {"TASK_ID": job.task_id, "ATTEMPT": str(attempt)}
        if self.task_timeout > 0:
            env["TASK_TIMEOUT"] = _seconds(self.task_timeout)
        container = run_v2.RunJobRequest.Overrides.ContainerOverride(
            env=[run_v2.EnvVar(name=name, value=value) for name, value in env.items()])
        overrides = run_v2.RunJobRequest.Overrides(container_overrides=[container], task_count=1)
        if self.task_timeout > 0:
            overrides.timeout = timedelta(seconds=self.task_timeout)
        return run_v2.RunJobRequest(name=self.job_path, overrides=overrides)

    def launch(self, job: Job, attempt: int) -> str:
        try:
            operation = self.jobs.run_job(request=self.request(job, attempt), timeout=RPC_TIMEOUT)
            name = self._execution_name(operation)
        except gexc.GoogleAPICallError as exc:
            raise LaunchError(f"Cloud Run refused to run {self.job_path}: {exc}") from exc
        if not name:
            raise LaunchError(f"Cloud Run started {self.job_path} but named no execution "
                              f"(operation {operation.operation.name})")
        log.info("launched %s attempt %s as %s", job.task_id, attempt, name)
        return name

    @staticmethod
    def _execution_name(operation: Any) -> str:
        deadline = time.monotonic() + METADATA_WAIT
        while True:
            metadata = operation.metadata
            if metadata is not None and metadata.name:
                return metadata.name
            if operation.operation.done or time.monotonic() > deadline:
                return ""
            time.sleep(0.5)
            operation.done()  # refreshes the operation (and its metadata)

    def stop(self, execution: str) -> None:
        if not execution.startswith("projects/"):
            log.warning("not a Cloud Run execution, nothing to stop: %s", execution)
            return
        try:
            self.executions.cancel_execution(request=run_v2.CancelExecutionRequest(name=execution),
                                             timeout=RPC_TIMEOUT)
        except (gexc.NotFound, gexc.FailedPrecondition) as exc:  # gone or already finished
            log.info("execution %s not cancelled: %s", execution, exc)
        except gexc.GoogleAPICallError as exc:
            raise LaunchError(f"could not cancel {execution}: {exc}") from exc

    def exited(self, execution: str) -> int | None:
        if not execution.startswith("projects/"):
            return None
        now = time.monotonic()
        with self._guard:
            if execution in self._exits:
                return self._exits[execution]
            if now - self._read_at.get(execution, float("-inf")) < self.poll_interval:
                return None
            _remember(self._read_at, execution, now)
        try:
            found = self.executions.get_execution(request=run_v2.GetExecutionRequest(name=execution),
                                                  timeout=RPC_TIMEOUT)
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            log.warning("could not read execution %s: %s", execution, exc)
            return None
        code = exit_code(found)
        if code is not None:
            with self._guard:
                self._read_at.pop(execution, None)
                _remember(self._exits, execution, code)
        return code

    def close(self) -> None:
        for client in (self.jobs, self.executions):
            try:
                client.transport.close()
            except Exception:  # noqa: BLE001 - closing a shared channel twice
                log.debug("closing a Cloud Run client failed", exc_info=True)


def exit_code(execution: run_v2.Execution) -> int | None:
    """None while the execution runs; else 0 (succeeded), EXIT_CANCELLED or 1 (failed)."""
    tasks = execution.task_count or 1
    ended = execution.succeeded_count + execution.failed_count + execution.cancelled_count
    if not run_v2.Execution.pb(execution).HasField("completion_time") and ended < tasks:
        return None
    if execution.cancelled_count:
        return EXIT_CANCELLED
    if execution.failed_count or execution.succeeded_count < tasks:
        return 1
    return 0


def _seconds(value: float) -> str:
    """``3600.0`` as "3600", ``2.5`` as "2.5": what the worker's settings parse back to the same float."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > KEPT:
        cache.pop(next(iter(cache)))

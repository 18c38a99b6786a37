"""An in-process fake of the Cloud Run Admin API v2 (Jobs.RunJob, Executions.CancelExecution/GetExecution).

A real ``grpc.server`` on a loopback port with generic handlers; requests are
parsed with the ``run_v2`` proto types, so the launcher's clients speak to it
exactly as to Cloud Run. It records every request it gets. RunJob answers with
an unfinished ``google.longrunning.Operation`` whose metadata is a packed
``run_v2.Execution`` carrying the new execution's name, as Cloud Run does.
GetExecution answers with the execution's state: running until a test calls
``finish(name, "succeeded" | "failed" | "cancelled")``; CancelExecution cancels it.
Set ``fail_with`` to a ``grpc.StatusCode`` to make the next calls fail.

With a ``WorkerJob`` (``FakeCloudRun(worker=...)``) the executions are real: each
RunJob starts the job's command (default ``python -m worker``) in its own session, with the
job's environment, the variables Cloud Run sets (``CLOUD_RUN_JOB``,
``CLOUD_RUN_EXECUTION``...) and the request's container overrides on top, as
Cloud Run does. The execution runs as long as the process: exit code 0 succeeded,
anything else failed. At the task timeout (the request's ``timeout`` override,
else the job's ``--task-timeout``) the process group gets SIGTERM, then SIGKILL
after ``grace`` seconds, and the execution failed; CancelExecution stops it the
same way and it reads cancelled once the process is gone. ``ended[name]`` tells
how each one ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import grpc
from google.cloud import run_v2
from google.longrunning import operations_pb2

JOBS_SERVICE = "google.cloud.run.v2.Jobs"
EXECUTIONS_SERVICE = "google.cloud.run.v2.Executions"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class WorkerJob:
    """What deployment defines for the Cloud Run job (``gcloud run jobs deploy``): command, env, task timeout."""

    env: dict[str, str]  # the container's environment before the overrides
    task_timeout: float = 600.0  # --task-timeout, used when a RunJob does not override it (Cloud Run: 10 min)
    command: tuple[str, ...] = (sys.executable, "-m", "worker")
    grace: float = 10.0  # SIGTERM to SIGKILL, as Cloud Run gives a stopping container
    log_dir: Path | None = None  # each execution's output in <log_dir>/<execution id>.log
    cwd: Path = REPO


@dataclass
class Ended:
    """How a real execution ended: its process's exit code, and whether the platform stopped it."""

    code: int
    timed_out: bool = False  # killed at the task timeout
    cancelled: bool = False  # stopped by CancelExecution
    seconds: float = 0.0  # from start to exit


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    timeout: float
    started: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)


class FakeCloudRun:
    def __init__(self, worker: WorkerJob | None = None) -> None:
        self.worker = worker
        self.envs: dict[str, dict[str, str]] = {}  # execution name -> its process's environment (real mode)
        self.ended: dict[str, Ended] = {}  # execution name -> how its process ended (real mode)
        self._processes: dict[str, _Process] = {}
        self.run_requests: list[run_v2.RunJobRequest] = []
        self.cancel_requests: list[run_v2.CancelExecutionRequest] = []
        self.get_requests: list[run_v2.GetExecutionRequest] = []
        self.executions: list[str] = []
        self.states: dict[str, str] = {}  # execution name -> running, succeeded, failed or cancelled
        self.fail_with: grpc.StatusCode | None = None
        self._guard = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler(JOBS_SERVICE, {
                "RunJob": self._unary(self._run_job, run_v2.RunJobRequest),
            }),
            grpc.method_handlers_generic_handler(EXECUTIONS_SERVICE, {
                "CancelExecution": self._unary(self._cancel_execution, run_v2.CancelExecutionRequest),
                "GetExecution": self._unary(self._get_execution, run_v2.GetExecutionRequest,
                                            lambda e: run_v2.Execution.serialize(e)),
            }),
        ))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    @staticmethod
    def _unary(behaviour, request_type, serialize=operations_pb2.Operation.SerializeToString) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=request_type.deserialize, response_serializer=serialize,
        )

    def _refuse(self, context: grpc.ServicerContext) -> None:
        if self.fail_with is not None:
            context.abort(self.fail_with, f"fake Cloud Run says {self.fail_with.name}")

    def _operation(self, name_of: str, execution: run_v2.Execution, done: bool) -> operations_pb2.Operation:
        location = "/".join(name_of.split("/")[:4])
        operation = operations_pb2.Operation(name=f"{location}/operations/{uuid.uuid4()}", done=done)
        operation.metadata.Pack(run_v2.Execution.pb(execution))
        if done:
            operation.response.Pack(run_v2.Execution.pb(execution))
        return operation

    def _run_job(self, request: run_v2.RunJobRequest, context: grpc.ServicerContext) -> operations_pb2.Operation:
        self._refuse(context)
        job = request.name.rsplit("/", 1)[-1]
        with self._guard:
            self.run_requests.append(request)
            name = f"{request.name}/executions/{job}-{len(self.run_requests):05d}"
            self.executions.append(name)
            self.states[name] = "running"
        if self.worker is not None:
            self._start(name, request)
        execution = run_v2.Execution(name=name, job=job, task_count=request.overrides.task_count or 1)
        return self._operation(request.name, execution, done=False)

    def _cancel_execution(self, request: run_v2.CancelExecutionRequest,
                          context: grpc.ServicerContext) -> operations_pb2.Operation:
        self._refuse(context)
        with self._guard:
            self.cancel_requests.append(request)
            known = request.name in self.executions
            process = self._processes.get(request.name)
            if process is not None:  # real: cancelled once the process is gone
                process.cancel.set()
            elif known and self.states[request.name] == "running":
                self.states[request.name] = "cancelled"
        if not known:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no execution {request.name}")
        return self._operation(request.name, run_v2.Execution(name=request.name), done=True)

    def _get_execution(self, request: run_v2.GetExecutionRequest, context: grpc.ServicerContext) -> run_v2.Execution:
        self._refuse(context)
        with self._guard:
            self.get_requests.append(request)
            state = self.states.get(request.name)
        if state is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no execution {request.name}")
        execution = run_v2.Execution(name=request.name, task_count=1)
        if state == "running":
            execution.running_count = 1
        else:  # finished: counted, with a completion time, as Cloud Run reports it
            setattr(execution, f"{state}_count", 1)
            execution.completion_time = datetime.now(timezone.utc)
        return execution

    def finish(self, name: str, state: str) -> None:
        """End an execution: "succeeded", "failed" or "cancelled"."""
        assert state in ("succeeded", "failed", "cancelled"), state
        with self._guard:
            self.states[name] = state

    # -- real executions (with a WorkerJob) ---------------------------------------------------

    def environment(self, name: str, request: run_v2.RunJobRequest) -> dict[str, str]:
        """The job's env, then what Cloud Run sets in every task, then the request's container overrides."""
        job = request.name.rsplit("/", 1)[-1]
        env = {**self.worker.env, "CLOUD_RUN_JOB": job, "CLOUD_RUN_EXECUTION": name.rsplit("/", 1)[-1],
               "CLOUD_RUN_TASK_INDEX": "0", "CLOUD_RUN_TASK_ATTEMPT": "0", "CLOUD_RUN_TASK_COUNT": "1"}
        for container in request.overrides.container_overrides:
            env.update({var.name: var.value for var in container.env})
        return env

    def _start(self, name: str, request: run_v2.RunJobRequest) -> None:
        overrides = request.overrides
        has_timeout = type(overrides).pb(overrides).HasField("timeout")
        timeout = overrides.timeout.total_seconds() if has_timeout else self.worker.task_timeout
        env = self.environment(name, request)
        log_path = None
        if self.worker.log_dir is not None:
            self.worker.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.worker.log_dir / f"{name.rsplit('/', 1)[-1]}.log"
        with open(log_path or os.devnull, "ab") as out:
            popen = subprocess.Popen(list(self.worker.command), env=env, cwd=self.worker.cwd, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        process = _Process(name, popen, timeout)
        with self._guard:
            self.envs[name] = env
            self._processes[name] = process
        threading.Thread(target=self._watch, args=(process,), name=f"fake-run-{popen.pid}", daemon=True).start()

    def _watch(self, process: _Process) -> None:
        """Wait for the process; stop it at the task timeout or on cancel; record how it ended."""
        deadline = process.started + process.timeout
        timed_out = False
        while process.popen.poll() is None:
            if process.cancel.is_set():
                self._terminate(process)
            elif time.monotonic() >= deadline:
                timed_out = True
                self._terminate(process)
            else:
                process.cancel.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        code = process.popen.returncode
        cancelled = process.cancel.is_set() and not timed_out
        ended = Ended(code, timed_out, cancelled, round(time.monotonic() - process.started, 3))
        with self._guard:
            self.ended[process.name] = ended
            self.states[process.name] = ("cancelled" if cancelled
                                         else "succeeded" if code == 0 and not timed_out else "failed")
            self._processes.pop(process.name, None)

    def wait_ended(self, name: str, timeout: float = 60.0) -> Ended:
        """How the real execution ``name`` ended, once its process is gone (at most ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while name not in self.ended:
            assert time.monotonic() < deadline, f"execution {name} still runs after {timeout} s"
            time.sleep(0.05)
        return self.ended[name]

    def _terminate(self, process: _Process) -> None:
        """SIGTERM to the whole container (the process group), SIGKILL after the grace."""
        self._signal(process, signal.SIGTERM)
        try:
            process.popen.wait(timeout=self.worker.grace)
        except subprocess.TimeoutExpired:
            self._signal(process, signal.SIGKILL)
            process.popen.wait()

    @staticmethod
    def _signal(process: _Process, sig: int) -> None:
        try:
            os.killpg(process.popen.pid, sig)
        except ProcessLookupError:
            pass

    def start(self) -> FakeCloudRun:
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop serving; kill what still runs (no execution outlives the fake)."""
        self.server.stop(grace=None)
        with self._guard:
            running = list(self._processes.values())
        for process in running:
            self._signal(process, signal.SIGKILL)
            process.popen.wait()

    def __enter__(self) -> FakeCloudRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

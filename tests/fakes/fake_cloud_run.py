"""An in-process fake of the Cloud Run Admin API v2 (Jobs.RunJob, Executions.CancelExecution/GetExecution).

A real ``grpc.server`` on a loopback port with generic handlers; requests are
parsed with the ``run_v2`` proto types, so the launcher's clients speak to it
exactly as to Cloud Run. It records every request it gets. RunJob answers with
an unfinished ``google.longrunning.Operation`` whose metadata is a packed
``run_v2.Execution`` carrying the new execution's name, as Cloud Run does.
GetExecution answers with the execution's state: running until a test calls
``finish(name, "succeeded" | "failed" | "cancelled")``; CancelExecution cancels it.
Set ``fail_with`` to a ``grpc.StatusCode`` to make the next calls fail.
"""

from __future__ import annotations

import threading
import uuid
from concurrent import futures
from datetime import datetime, timezone

import grpc
from google.cloud import run_v2
from google.longrunning import operations_pb2

JOBS_SERVICE = "google.cloud.run.v2.Jobs"
EXECUTIONS_SERVICE = "google.cloud.run.v2.Executions"


class FakeCloudRun:
    def __init__(self) -> None:
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
        execution = run_v2.Execution(name=name, job=job, task_count=request.overrides.task_count or 1)
        return self._operation(request.name, execution, done=False)

    def _cancel_execution(self, request: run_v2.CancelExecutionRequest,
                          context: grpc.ServicerContext) -> operations_pb2.Operation:
        self._refuse(context)
        with self._guard:
            self.cancel_requests.append(request)
            known = request.name in self.executions
            if known and self.states[request.name] == "running":
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

    def start(self) -> FakeCloudRun:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None)

    def __enter__(self) -> FakeCloudRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Harness for worker tests: a fresh SQLite store under tmp_path, jobs claimed like the
dispatcher claims them, and ``python -m worker`` run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.backends import Backend, open_backend
from orchestrator.config import load_settings
from orchestrator.domain.job import Job, Progress, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.transitions import claim
from orchestrator.launchers.local import log_path

TENANT = "acme"
# Seconds; generous because CI machines are slow and shared.
RUN_TIMEOUT = 300
# Short lease and progress interval so cancels and take-overs are noticed within a second.
WORKER_ENV = {
    "WANDB_MODE": "offline",
    "YOLO_DEVICE": "cpu",  # the same result (and billing as "cpu") on machines with a GPU
    "GPU_TYPE": "nvidia-l4",
    "LEASE_SECONDS": "8",
    "PROGRESS_INTERVAL": "0.2",
    "PYTHONUNBUFFERED": "1",
}


# Loaded by every worker subprocess (via PYTHONPATH): any attempt to reach another host is refused
# and written to the log, so tests prove the worker trains fully offline. Loopback stays open (W&B's
# local service uses it).
NETWORK_GUARD = """
import socket, sys

def _local(host):
    host = str(host or "")
    return host in ("", "localhost", "::1", "0.0.0.0") or host.startswith("127.")

def _refuse(what):
    sys.stderr.write("NETWORK ATTEMPT: %s\\n" % (what,))
    sys.stderr.flush()
    return OSError("network access is disabled in worker tests: %s" % (what,))

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        raise _refuse(address)
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        raise _refuse(address)
    return _connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if not _local(host):
        raise socket.gaierror(str(_refuse(host)))
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""


class WorkerProcess:
    """A running ``python -m worker``; output goes to the job's log, as with the local launcher."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path):
        self.proc, self.log = proc, log

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker still running after {timeout} s\n{self.tail()}") from None

    def network_attempts(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if "NETWORK ATTEMPT" in line]

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(line.rsplit("\r", 1)[-1] for line in text.splitlines()[-lines:])


class Harness:
    """One LAXAI_HOME with its store, artifacts, registry and queue."""

    def __init__(self, home: Path):
        self.home = home
        self.settings = load_settings(LAXAI_HOME=home)
        self.backend: Backend = open_backend(self.settings)
        self.store = self.backend.store
        self.guard = home.parent / "network-guard"
        self.guard.mkdir(exist_ok=True)
        (self.guard / "sitecustomize.py").write_text(NETWORK_GUARD)
        self.started: list[subprocess.Popen[bytes]] = []

    @property
    def data_root(self) -> Path:
        """The tenant's own data root ($LAXAI_HOME/data/<tenant>/): datasets and weights files go here."""
        root = self.home / "data" / TENANT
        root.mkdir(parents=True, exist_ok=True)
        return root

    def submit(self, dataset: str = "synthetic:16", epochs: int = 2, **spec: Any) -> str:
        """Store a tiny job and claim it (attempt 1), as the dispatcher would; returns its task id."""
        spec = {"model_params": {"architecture": "yolov8n", "input_size": 64}, **spec}
        spec_obj = JobSpec(tenant_id=TENANT, dataset=dataset, training_params={"epochs": epochs, "batch_size": 8},
                           **spec)
        job, _ = self.store.create(Job(tenant_id=TENANT, spec=spec_obj,
                                       progress=Progress(total_epochs=epochs, message="Queued")))
        self.claim(job.task_id)
        return job.task_id

    def claim(self, task_id: str) -> int:
        """queued -> running with a new attempt; returns its number."""
        job = self.store.update(task_id, lambda j: claim(j, utcnow(), 600), kind="status:running")
        assert job is not None, f"could not claim {task_id}: {self.job(task_id).status}"
        return job.current_attempt.number

    def start(self, task_id: str, attempt: int, **env: str) -> WorkerProcess:
        environ = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        environ.update(WORKER_ENV)
        environ.update(env)
        environ["LAXAI_HOME"] = str(self.home)
        environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.guard), environ.get("PYTHONPATH")]))
        log = log_path(self.home, task_id)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker", "--task-id", task_id, "--attempt", str(attempt)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environ,
                cwd=self.home,  # the launcher leaves cwd unspecified: the worker must not depend on it
            )
        self.started.append(proc)
        return WorkerProcess(proc, log)

    def run(self, task_id: str, attempt: int, **env: str) -> tuple[int, WorkerProcess]:
        worker = self.start(task_id, attempt, **env)
        return worker.wait(), worker

    def job(self, task_id: str) -> Job:
        job = self.store.get(task_id)
        assert job is not None
        return job

    def wait_until(self, task_id: str, predicate: Callable[[Job], bool], worker: WorkerProcess,
                   timeout: float = RUN_TIMEOUT) -> Job:
        """Poll the store until ``predicate(job)``; fails early if the worker exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(task_id)
            if predicate(job):
                return job
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited ({worker.proc.returncode}) before the condition held; "
                                     f"job is {job.status.value}: {job.progress.message}\n{worker.tail()}")
            time.sleep(0.05)
        raise AssertionError(f"condition not reached in {timeout} s\n{worker.tail()}")

    def events(self, task_id: str, after: int = 0) -> list:
        return [e for e in self.store.changes(after, limit=10_000) if e.task_id == task_id]

    def inspect_checkpoint(self, path: Path) -> dict[str, Any]:
        """Load an Ultralytics checkpoint in a clean subprocess, with the safe loader workers use
        (torch.load(weights_only=True) and Ultralytics' allow-list): our own checkpoints must pass it."""
        code = (
            "import json, sys; from pathlib import Path; from worker import offline; "
            "offline.prepare(Path(sys.argv[2])); from ultralytics.nn.tasks import torch_safe_load; "
            "ck, _ = torch_safe_load(sys.argv[1], safe_only=True); "
            "print(json.dumps({'epoch': ck.get('epoch'), 'optimizer': ck.get('optimizer') is not None, "
            "'epochs': (ck.get('train_args') or {}).get('epochs')}))"
        )
        out = subprocess.run([sys.executable, "-c", code, str(path), str(self.home)], capture_output=True,
                             text=True, timeout=120, check=True)
        import json

        return json.loads(out.stdout.strip().splitlines()[-1])

    def close(self) -> None:
        for proc in self.started:  # a failed test leaves no worker training on (SIGKILL: a stopped one too)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.backend.close()


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    h = Harness(tmp_path / "home")
    yield h
    h.close()

"""``laxai serve`` as a subprocess for the benchmarks, plus helpers to read its jobs and workers.

``Service`` is ``tests/support/serve.py``'s ServeProcess started as
``python -m orchestrator.cli serve`` with the running interpreter, so it also
works where the package is not installed (the GPU machine, from PYTHONPATH).
Each service gets its own LAXAI_HOME and API token.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.serve import ServeProcess

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789"
TENANT = "bench"
TERMINAL = {"completed", "failed", "cancelled"}


class Service(ServeProcess):
    """One ``laxai serve`` process; ``env`` adds or overrides environment variables.

    The tests' ServeProcess, run as ``python -m orchestrator.cli`` with the running
    interpreter, the bench token and the service's own defaults (DISPATCH_INTERVAL
    included, which the tests shorten), logging warnings only."""

    def __init__(self, home: Path, **env: Any):
        # Workers see the resolved path in LAXAI_HOME (kill_workers matches it).
        defaults = {"LAXAI_BACKEND": "local", "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
        super().__init__(home.resolve(), token=TOKEN, tenant=TENANT, serve_args=("--log-level", "warning"),
                         program=(sys.executable, "-m", "orchestrator.cli"), extra_env={**defaults, **env})
        if "DISPATCH_INTERVAL" not in env:
            self.env.pop("DISPATCH_INTERVAL", None)

    def log_tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:]

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=timeout)


def job_body(epochs: int = 1, imgsz: int = 32, dataset: str = "synthetic:8", batch: int = 8,
             **extra: Any) -> dict[str, Any]:
    """A job as POST /orchestrate takes it."""
    return {
        "training_params": {"epochs": epochs, "batch_size": batch, "learning_rate": 0.001},
        "model_params": {"architecture": "yolov8n", "input_size": imgsz},
        "dataset": dataset,
        **extra,
    }


def wait_for(client: httpx.Client, task_ids: list[str], timeout: float = 600, statuses=TERMINAL,
             interval: float = 0.25) -> dict[str, dict[str, Any]]:
    """Poll GET /status until every job is in ``statuses``; returns the last views."""
    deadline = time.monotonic() + timeout
    views: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        views = {t: client.get("/status", params={"task_id": t}).json() for t in task_ids}
        if all(v.get("status") in statuses for v in views.values()):
            return views
        time.sleep(interval)
    raise TimeoutError(f"jobs did not reach {sorted(statuses)} in {timeout:.0f} s: "
                       f"{ {t: v.get('status') for t, v in views.items()} }")


def worker_pid(execution: str | None) -> int | None:
    """The pid of a local execution ("local:<pid>")."""
    if not execution or not execution.startswith("local:"):
        return None
    tail = execution.split(":", 1)[1]
    return int(tail) if tail.isdigit() else None


def process_start_unix(pid: int) -> float | None:
    """When a process started, as Unix time (10 ms resolution: the kernel counts clock ticks)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[19])  # field 22 of stat, counted after "pid (comm)"
    since_boot = ticks / os.sysconf("SC_CLK_TCK")
    return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)


def _workers() -> list[tuple[int, bytes]]:
    """(pid, cmdline) of every ``python -m worker`` process."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"worker\x00--task-id" in cmdline:
            found.append((int(proc.name), cmdline))
    return found


def find_worker(task_id: str, timeout: float = 60, poll: float = 0.01) -> int | None:
    """The pid of the worker process of ``task_id``, polling /proc until it appears."""
    needle = b"\x00" + task_id.encode() + b"\x00"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid, cmdline in _workers():
            if needle in cmdline:
                return pid
        time.sleep(poll)
    return None


def kill_workers(home: Path) -> int:
    """SIGKILL every worker process group started for this LAXAI_HOME; returns how many."""
    mine = f"LAXAI_HOME={home.resolve()}".encode()
    killed = 0
    for pid, _ in _workers():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if mine in environ.split(b"\x00"):
            try:
                os.killpg(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def hold_dispatcher(client: httpx.Client, timeout: float = 120) -> tuple[str, int]:
    """Occupy the only slot (start the service with MAX_CONCURRENT_JOBS=1) with a long job whose
    worker is frozen (SIGSTOP) before it trains: later jobs stay queued and nothing trains.
    Returns (task_id, pid). To clean up, stop the service first, then ``kill_workers``: killed
    while the service runs, the frozen worker would be replaced by the next queued job."""
    response = client.post("/orchestrate", json=job_body(epochs=1000, custom_name="bench-blocker"))
    response.raise_for_status()
    task = response.json()["task_id"]
    pid = find_worker(task, timeout=timeout, poll=0.005)
    if pid is None:
        raise RuntimeError(f"the blocker job {task} got no worker within {timeout:.0f} s")
    os.killpg(pid, signal.SIGSTOP)
    return task, pid


# Service settings under which ``hold_dispatcher`` keeps every later job queued for the whole run
# (and the queued cap out of the way: these items submit thousands of jobs as one tenant).
HELD = {"MAX_CONCURRENT_JOBS": 1, "LEASE_SECONDS": 3600, "STARTUP_GRACE_SECONDS": 3600,
        "MAX_QUEUED_PER_TENANT": 1_000_000}

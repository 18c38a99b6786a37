"""Run `laxai serve` as a real subprocess for end-to-end tests, and talk to it over HTTP.

One ``ServeProcess`` serves tests/e2e, tests/faults, tests/gcp and tests/slack:
a free port kept across restarts, its own LAXAI_HOME, the service's output in
files (``log``, ``output()``), optional ``serve_args`` (``--backend gcp``...) and
environment on top of ``os.environ`` or of a given ``base_env``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
LAXAI = str(Path(sys.executable).with_name("laxai"))
TERMINAL = {"completed", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`laxai serve` on a free port with its own LAXAI_HOME; restartable on the same port and state."""

    def __init__(self, home: Path, token: str = "e2e-token-123456", tenant: str = "e2e",
                 serve_args: tuple[str, ...] = (), *, base_env: Mapping[str, str] | None = None,
                 extra_env: Mapping[str, Any] | None = None, log_dir: Path | None = None,
                 port: int | None = None, program: tuple[str, ...] = (LAXAI,), **env: Any):
        """``serve_args`` go after ``laxai serve --port N`` (e.g. ``("--backend", "gcp")``);
        ``program`` is what runs ``serve`` (the benchmarks use ``python -m orchestrator.cli``).

        The child's environment is ``base_env`` (default ``os.environ``), then the test
        defaults (LAXAI_HOME, LAXAI_API_TOKENS from ``token``/``tenant``, offline W&B...),
        then ``extra_env`` and ``env`` (keyword arguments, for names that are identifiers).
        Output goes to ``log_dir/serve-<n>.log`` (one file per start) when ``log_dir`` is
        given, else to ``home/serve-<port>.log`` (appended across starts).
        """
        self.home = home
        self.token = token
        self.serve_args = tuple(serve_args)
        self.program = tuple(program)
        self.port = port or free_port()
        self.env = {
            **(os.environ if base_env is None else base_env),
            "LAXAI_HOME": str(home),
            "LAXAI_API_TOKENS": f"{token}:{tenant}",
            "WANDB_MODE": "offline",
            "PYTHONUNBUFFERED": "1",
            "DISPATCH_INTERVAL": "0.2",
            **{k: str(v) for k, v in (extra_env or {}).items()},
            **{k: str(v) for k, v in env.items()},
        }
        self.env["PORT"] = str(self.port)
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log = home / f"serve-{self.port}.log" if log_dir is None else log_dir / "serve-1.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _next_log(self) -> Path:
        self.runs += 1
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.log = self.log_dir / f"serve-{self.runs}.log"
        return self.log

    def start(self, timeout: float = 60) -> "ServeProcess":
        """Start (or start again, on the same port) and wait until /healthz answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self._next_log(), "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([*self.program, "serve", "--port", str(self.port), *self.serve_args],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"laxai serve exited with {self.proc.returncode}: {self.output()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"laxai serve did not answer on {self.url}: {self.output()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop the service process only (workers run in their own sessions and live on)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self, sig: int = signal.SIGTERM, timeout: float = 60) -> "ServeProcess":
        """Stop with ``sig`` (SIGKILL: a crash) and start again on the same port and state."""
        self.stop(sig)
        return self.start(timeout)

    def output(self) -> str:
        """Everything the service printed, over all its starts."""
        logs = (sorted(self.log_dir.glob("serve-*.log"), key=lambda p: int(p.stem.split("-")[-1]))
                if self.log_dir is not None else [self.log])
        return "\n".join(p.read_text(errors="replace") for p in logs if p.exists())

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def tiny_job(**overrides: Any) -> dict[str, Any]:
    """The smallest real training: 1 epoch of yolov8n on 8 synthetic images at 64 px."""
    body: dict[str, Any] = {
        "training_params": {"epochs": 1, "batch_size": 8, "learning_rate": 0.001},
        "model_params": {"architecture": "yolov8n", "input_size": 64},
        "dataset": "synthetic:8",
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            body[key] = {**body.get(key, {}), **value}
        else:
            body[key] = value
    return body


def wait_for(client: httpx.Client, task_ids: list[str], timeout: float = 300, statuses=TERMINAL,
             on_poll=None) -> dict[str, dict[str, Any]]:
    """Poll GET /status until every job is in ``statuses``; returns the last views."""
    deadline = time.monotonic() + timeout
    views: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        views = {t: client.get("/status", params={"task_id": t}).json() for t in task_ids}
        if on_poll:
            on_poll(views)
        if all(v["status"] in statuses for v in views.values()):
            return views
        time.sleep(0.25)
    raise AssertionError(f"jobs did not reach {statuses} in {timeout}s: "
                         f"{ {t: v.get('status') for t, v in views.items()} }")


def kill_workers(home: Path) -> None:
    """Kill any worker still running for this LAXAI_HOME (test clean-up). Warm-started workers carry
    their warm-start process's command line (worker/warm.py), and its environment's LAXAI_HOME."""
    out = subprocess.run(["pgrep", "-f", "-a", "worker --task-id|-m worker.warm "], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        pid = int(line.split()[0])
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"\0LAXAI_HOME={home}\0".encode() in b"\0" + environ:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

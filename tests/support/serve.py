"""Run `laxai serve` as a real subprocess for end-to-end tests, and talk to it over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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
    """`laxai serve` on a free port with its own LAXAI_HOME; restartable on the same state."""

    def __init__(self, home: Path, token: str = "e2e-token-123456", tenant: str = "e2e",
                 serve_args: tuple[str, ...] = (), **env: Any):
        """``serve_args`` go after ``laxai serve --port N`` (e.g. ``("--backend", "gcp")``); ``env`` over os.environ."""
        self.home = home
        self.token = token
        self.serve_args = tuple(serve_args)
        self.port = free_port()
        self.env = {
            **os.environ,
            "LAXAI_HOME": str(home),
            "LAXAI_API_TOKENS": f"{token}:{tenant}",
            "WANDB_MODE": "offline",
            "PYTHONUNBUFFERED": "1",
            "DISPATCH_INTERVAL": "0.2",
            **{k: str(v) for k, v in env.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "ServeProcess":
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([LAXAI, "serve", "--port", str(self.port), *self.serve_args],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"laxai serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"laxai serve did not answer on {self.url}: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop the service process only (workers run in their own sessions and live on)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

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
    """Kill any worker still running for this LAXAI_HOME (test clean-up)."""
    out = subprocess.run(["pgrep", "-f", "-a", "worker --task-id"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        pid = int(line.split()[0])
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"LAXAI_HOME={home}".encode() in environ:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

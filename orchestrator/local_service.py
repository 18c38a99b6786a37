"""Run the service (API + dispatcher + extensions) with uvicorn, in the foreground or a thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from orchestrator.api.app import create_app
from orchestrator.config import Settings
from orchestrator.server import create_runtime


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def build_server(settings: Settings, host: str, port: int, socket_mode: bool = False,
                 log_level: str = "warning", dispatch: bool = True) -> uvicorn.Server:
    runtime = create_runtime(settings, dispatch=dispatch)
    runtime.extras["socket_mode"] = socket_mode
    app = create_app(runtime)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


class BackgroundService:
    """The service on a thread, for `laxai demo` (stops when the demo ends)."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int | None = None, dispatch: bool = True):
        self.host = host
        self.port = port or free_port(host)
        self.server = build_server(settings, self.host, self.port, dispatch=dispatch)
        self.thread = threading.Thread(target=self.server.run, name="laxai-service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "BackgroundService":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the local service did not start on {self.url}")
            time.sleep(0.05)
        return self

    @property
    def runtime(self):
        return self.server.config.app.state.runtime

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

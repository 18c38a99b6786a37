"""The service process: compose a Runtime (backend, job service, dispatcher, extensions) and serve it.

``create_runtime`` assembles the parts; ``build_server`` wraps them in the REST app
and a uvicorn server (``laxai serve`` runs it in the foreground); ``ServiceThread``
runs the same server on a thread (``laxai demo``, tests).

``LAXAI_DISPATCH`` picks how the dispatcher hears of new work: ``pull`` (its loop
pulls the queue) or ``push`` (Pub/Sub pushes to ``/pubsub/push``, which runs a
pass; the loop still ticks every DISPATCH_INTERVAL for lease sweeps and freed
capacity). ``LAXAI_CHANGE_FEED`` picks where change listeners' events come from
(see ``orchestrator.runtime``).
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time

import uvicorn

from orchestrator.api.app import create_app
from orchestrator.backends import launcher_kind, open_backend
from orchestrator.config import Settings
from orchestrator.dispatcher import Dispatcher
from orchestrator.launchers.base import Launcher
from orchestrator.runtime import Runtime
from orchestrator.service import JobService

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The service cannot do its work with this configuration; the message says what is missing."""


def check_launcher(settings: Settings) -> None:
    """Refuse to start a dispatching gcp service whose Cloud Run launcher could never launch a job
    (it would accept jobs that then wait for ever), naming what is missing and the alternative."""
    if launcher_kind(settings) != "cloudrun":
        return
    from orchestrator.backends.gcp import cloud_run_missing

    missing = cloud_run_missing(settings)
    if missing:
        lines = "\n".join(f"  - {item}" for item in missing)
        raise StartupError(
            f"the gcp backend launches workers as Cloud Run job executions, and this environment lacks:\n{lines}\n"
            "To run everything on one machine (the Firestore and Pub/Sub emulators, workers as local "
            "processes), set LAXAI_LAUNCHER=local.")


def create_runtime(settings: Settings, launcher: Launcher | None = None, dispatch: bool = True) -> Runtime:
    """A Runtime with the dispatcher loop registered as a background service.

    StartupError when it would dispatch with a Cloud Run launcher that lacks what it needs."""
    if dispatch and launcher is None:
        check_launcher(settings)
    backend = open_backend(settings, launcher)
    runtime = Runtime(settings=settings, backend=backend, jobs=JobService(backend))
    # Services stop in reverse order, so the backend, registered first, closes last,
    # just after the change feed that reads it.
    runtime.add_service("backend", lambda: None, backend.close)
    runtime.add_service("change-feed", lambda: None, runtime.close_feed)
    if dispatch:
        dispatcher = Dispatcher(backend, pull=settings.LAXAI_DISPATCH == "pull")
        runtime.dispatcher = dispatcher
        runtime.loops.append(dispatcher.health)
        runtime.add_service("dispatcher", dispatcher.start, dispatcher.stop)
        _add_worker_limits(runtime)
    log.info("dispatch: %s; change feed: %s", settings.LAXAI_DISPATCH if dispatch else "off",
             settings.LAXAI_CHANGE_FEED)
    _warn_unreachable(settings)
    return runtime


def _add_worker_limits(runtime: Runtime) -> None:
    """Say at start-up whether local workers' memory limit is enforced; sweep old jobs' files."""
    settings, backend = runtime.settings, runtime.backend
    if launcher_kind(settings) == "local":
        from orchestrator.launchers.memlimit import MemoryLimiter

        limiter = MemoryLimiter(settings.worker_memory_bytes, settings.WORKER_CGROUP_ROOT)
        (log.info if limiter.enforced else log.warning)("%s", limiter.describe())
    if settings.LAXAI_RETENTION_DAYS > 0:
        from orchestrator.retention import RetentionSweeper

        sweeper = RetentionSweeper(settings.home, backend.store, backend.registry, settings.LAXAI_RETENTION_DAYS)
        runtime.add_service("retention", sweeper.start, sweeper.stop)


def _warn_unreachable(settings: Settings) -> None:
    """Say at start-up when push mode is on but its endpoint will refuse every call."""
    if settings.LAXAI_PUSH_AUTH == "none":
        return
    for mode, audience, endpoint in (("LAXAI_DISPATCH=push", "PUSH_AUDIENCE", "/pubsub/push"),
                                     ("LAXAI_CHANGE_FEED=eventarc", "EVENTARC_AUDIENCE", "/eventarc/firestore")):
        name, _, value = mode.partition("=")
        if getattr(settings, name) == value and not (getattr(settings, audience) and settings.PUSH_SERVICE_ACCOUNT):
            log.warning("%s, but %s or PUSH_SERVICE_ACCOUNT is unset: %s will refuse every call "
                        "(LAXAI_PUSH_AUTH=none accepts unsigned calls on local runs)", mode, audience, endpoint)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def build_server(settings: Settings, host: str, port: int, socket_mode: bool = False,
                 log_level: str = "warning", dispatch: bool = True) -> uvicorn.Server:
    """The REST app over a new Runtime, in a uvicorn server (not started)."""
    runtime = create_runtime(settings, dispatch=dispatch)
    runtime.socket_mode = socket_mode
    app = create_app(runtime)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def settle_heap() -> int:
    """Collect start-up garbage, then set every surviving object aside from garbage collection;
    returns how many were set aside. Call once, when the service is built and before it serves.

    Most of the service's heap is what start-up made and keeps for good (modules, classes, the
    app, the settings: ~77k objects). Every full collection walks all of it: in benchmark item 1
    (1210 signed /train acks) two full collections of 60 and 75 ms landed among the acks, and a
    burst of 50 that meets one waits for it. Frozen (``gc.freeze``), those objects are no longer
    walked (the one full collection left took 24 ms); objects made later are collected as before.
    The ack p99 at 50 concurrent went from ~245 to ~200 ms (BENCHMARKS.md, item 1)."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("%d start-up objects set aside from garbage collection", frozen)
    return frozen


class ServiceThread:
    """The service on a thread, for `laxai demo` and tests (stops when the block ends)."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int | None = None, dispatch: bool = True):
        self.host = host
        self.port = port or free_port(host)
        self.server = build_server(settings, self.host, self.port, dispatch=dispatch)
        self.thread = threading.Thread(target=self.server.run, name="laxai-service", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> ServiceThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the local service did not start on {self.url}")
            time.sleep(0.05)
        return self

    @property
    def runtime(self) -> Runtime:
        return self.server.config.app.state.runtime

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

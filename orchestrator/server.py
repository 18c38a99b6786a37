"""Compose a running service: backend, job service, dispatcher, REST app and extensions."""

from __future__ import annotations

import logging

from orchestrator.backends import open_backend
from orchestrator.config import Settings
from orchestrator.dispatcher import Dispatcher
from orchestrator.launchers.base import Launcher
from orchestrator.runtime import Runtime
from orchestrator.service import JobService

log = logging.getLogger(__name__)


def create_runtime(settings: Settings, launcher: Launcher | None = None, dispatch: bool = True) -> Runtime:
    """A Runtime with the dispatcher loop registered as a background service."""
    backend = open_backend(settings, launcher)
    runtime = Runtime(settings=settings, backend=backend, service=JobService(backend))
    # Services stop in reverse order, so the backend, registered first, closes last.
    runtime.add_service("backend", lambda: None, backend.close)
    if dispatch:
        dispatcher = Dispatcher(backend)
        runtime.extras["dispatcher"] = dispatcher
        runtime.add_service("dispatcher", dispatcher.start, dispatcher.stop)
    return runtime

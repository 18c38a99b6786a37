"""Runtime: what a running ``laxai serve`` holds, and how extensions plug into it.

Extensions (the Slack bot is one) are found through the ``laxai.extensions``
entry-point group, so the orchestrator never imports a front end. Each is a
function ``install(app: FastAPI, runtime: Runtime) -> None`` that adds routes
and, if it needs one, a background service (the notifier following the change
feed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from orchestrator.backends import Backend
from orchestrator.config import Settings
from orchestrator.service import JobService

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

EXTENSION_GROUP = "laxai.extensions"


@dataclass
class BackgroundService:
    name: str
    start: Callable[[], None]
    stop: Callable[[], None]


@dataclass
class Runtime:
    """The service's shared parts: settings, backend, the job service and background services."""

    settings: Settings
    backend: Backend
    service: JobService
    services: list[BackgroundService] = field(default_factory=list)
    # Anything an extension wants to expose to tests or other extensions, by name.
    extras: dict[str, Any] = field(default_factory=dict)

    def add_service(self, name: str, start: Callable[[], None], stop: Callable[[], None]) -> None:
        self.services.append(BackgroundService(name, start, stop))

    def start(self) -> None:
        for svc in self.services:
            log.info("starting %s", svc.name)
            svc.start()

    def stop(self) -> None:
        for svc in reversed(self.services):
            try:
                svc.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("stopping %s failed", svc.name)


def install_extensions(app: FastAPI, runtime: Runtime, names: set[str] | None = None) -> list[str]:
    """Install every registered extension (or only ``names``); returns those installed."""
    installed = []
    for ep in entry_points(group=EXTENSION_GROUP):
        if names is not None and ep.name not in names:
            continue
        try:
            install = ep.load()
        except ImportError:
            log.warning("extension %s is not installed here; skipping", ep.name, exc_info=True)
            continue
        if install(app, runtime) is not False:  # an extension may decline (e.g. not configured)
            installed.append(ep.name)
    return installed

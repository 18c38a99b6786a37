"""Runtime: what a running ``laxai serve`` holds, and how extensions plug into it.

Extensions (the Slack bot is one) are found through the ``laxai.extensions``
entry-point group, so the orchestrator never imports a front end. Each is a
function ``install(app: FastAPI, runtime: Runtime) -> None`` that adds routes
and, if it needs one, a background service (the notifier following the change
feed).

Change listeners: ``runtime.on_change(listener)`` calls ``listener(event)`` with a
``stores.base.ChangeEvent`` for every job change from then on, and returns a
handle whose ``stop()`` unsubscribes. Where the events come from is the
``LAXAI_CHANGE_FEED`` setting, so a listener never needs to know:

- ``watch`` (default): the store's own feed (SQLite polling, Firestore
  ``on_snapshot``), opened once when the first listener subscribes and closed
  when the last one leaves (or when the runtime stops);
- ``eventarc``: Eventarc posts Firestore document events to
  ``/eventarc/firestore`` (``orchestrator/api/eventarc.py``), which calls
  ``runtime.publish_change``. Each event reaches one service instance only.

Either way, ``publish_change`` delivers to every listener one event at a time,
drops an event whose job version is not newer than the last one delivered for
that job (push deliveries repeat and arrive out of order), and logs a listener's
exception without raising it, so one broken listener never stops the others or
fails the request that carried the event. No replay: a listener sees changes
made after it subscribed (scan the store for the current state first, as a
watcher would).

Health: ``problems()`` names the background loops that cannot be trusted to
recover (``orchestrator.health``): a loop in ``loops`` past LOOP_FAILURE_LIMIT
failed passes in a row, or a thread a background service started that died on
an uncaught exception. ``/healthz`` answers 503 with them.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from orchestrator.backends import Backend
from orchestrator.config import Settings
from orchestrator.health import LoopHealth, death_of, install_thread_hook
from orchestrator.service import JobService
from orchestrator.stores.base import ChangeEvent, Watch

if TYPE_CHECKING:
    from fastapi import FastAPI

    from orchestrator.api.oidc import CertCache
    from orchestrator.dispatcher import Dispatcher

log = logging.getLogger(__name__)

EXTENSION_GROUP = "laxai.extensions"
ChangeListener = Callable[[ChangeEvent], None]
# Jobs whose last delivered version is remembered (to drop repeats); the oldest are forgotten first.
VERSIONS_KEPT = 10_000


@dataclass
class BackgroundService:
    """A part of the service that runs beside requests (the dispatcher, the notifier), started and stopped with it."""

    name: str
    start: Callable[[], None]
    stop: Callable[[], None]
    # The threads its start() began: one that dies on an uncaught exception makes /healthz say 503.
    threads: list[threading.Thread] = field(default_factory=list)


@dataclass
class Runtime:
    """The service's shared parts: settings, backend, the job service and background services."""

    settings: Settings
    backend: Backend
    jobs: JobService
    background: list[BackgroundService] = field(default_factory=list)
    # Loops that count their failed passes (the dispatcher's); /healthz reports those not recovering.
    loops: list[LoopHealth] = field(default_factory=list)
    # The dispatch loop, when this service dispatches; /pubsub/push runs its passes.
    dispatcher: Dispatcher | None = None
    # `laxai serve --socket-mode`: front ends connect out (Slack over Socket Mode) as well as serving HTTP.
    socket_mode: bool = False
    # Certificates /pubsub/push and /eventarc/firestore verify OIDC tokens against (None: Google's; tests give one).
    oidc_certs: CertCache | None = None
    # The extensions the REST app installed (``install_extensions``), by entry-point name.
    extensions: list[str] = field(default_factory=list)
    _listeners: list[ChangeListener] = field(default_factory=list, repr=False)
    _delivered: OrderedDict[str, int] = field(default_factory=OrderedDict, repr=False)
    _feed: Watch | None = field(default=None, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)  # the listener list
    _feed_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # opening/closing the feed
    _delivery: threading.Lock = field(default_factory=threading.Lock, repr=False)  # one event at a time

    # -- change listeners -----------------------------------------------------

    def on_change(self, listener: ChangeListener) -> Watch:
        """Call ``listener`` for every job change from now on; ``stop()`` on the result unsubscribes."""
        # Opening a feed may wait for its first snapshot: never while holding what deliveries take.
        with self._feed_lock:
            with self._guard:
                self._listeners.append(listener)
            if self.settings.LAXAI_CHANGE_FEED == "watch" and self._feed is None:
                self._feed = self.backend.store.watch(self.publish_change)
        return _Subscription(self, listener)

    def _unsubscribe(self, listener: ChangeListener) -> None:
        with self._feed_lock:
            with self._guard:
                if listener in self._listeners:
                    self._listeners.remove(listener)
                last = not self._listeners
            if last:
                self._close_feed()

    def close_feed(self) -> None:
        """Stop following the store's feed (idempotent); listeners stay registered."""
        with self._feed_lock:
            self._close_feed()

    def _close_feed(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.stop()

    def publish_change(self, event: ChangeEvent) -> None:
        """Deliver one change to every listener, unless a newer version of the job was delivered."""
        with self._delivery:
            seen = self._delivered.get(event.task_id, 0)
            if event.job.version <= seen:
                log.debug("change of %s v%d dropped: v%d delivered", event.task_id, event.job.version, seen)
                return
            self._delivered[event.task_id] = event.job.version
            self._delivered.move_to_end(event.task_id)
            while len(self._delivered) > VERSIONS_KEPT:
                self._delivered.popitem(last=False)
            with self._guard:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(event)
                except Exception:  # noqa: BLE001 - a failing listener never stops the others
                    log.exception("change listener %r failed on %s", listener, event.task_id)

    # -- background services --------------------------------------------------

    def add_service(self, name: str, start: Callable[[], None], stop: Callable[[], None]) -> None:
        self.background.append(BackgroundService(name, start, stop))

    def start(self) -> None:
        install_thread_hook()
        for svc in self.background:
            log.info("starting %s", svc.name)
            before = set(threading.enumerate())
            svc.start()
            svc.threads = [t for t in threading.enumerate() if t not in before]

    def problems(self) -> list[str]:
        """Background loops that cannot be trusted to recover by themselves (empty: healthy)."""
        found = [problem for loop in self.loops if (problem := loop.problem())]
        for svc in self.background:
            for thread in svc.threads:
                death = death_of(thread)
                if death is not None:
                    found.append(f"{svc.name}: thread {thread.name} died: {death}")
        return found

    def stop(self) -> None:
        for svc in reversed(self.background):
            try:
                svc.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                log.exception("stopping %s failed", svc.name)
        self.close_feed()


class _Subscription(Watch):
    def __init__(self, runtime: Runtime, listener: ChangeListener):
        self._runtime, self._listener = runtime, listener

    def stop(self) -> None:
        self._runtime._unsubscribe(self._listener)


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

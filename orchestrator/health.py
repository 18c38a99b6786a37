"""Health of the service's background loops, for ``/healthz``.

A background loop (the dispatcher's, a change feed's, the Slack notifier's) that
raises is logged, backs off and goes on; ``LoopHealth`` counts its failed passes
in a row and says how long to back off. After ``limit`` failures in a row, or
once a thread a background service started has died on an exception it did not
catch, the service cannot be trusted to recover by itself: ``/healthz`` answers
503 naming the loop, so the platform's health check (or a person) restarts it
rather than jobs waiting for ever behind a dead loop.

Thread deaths are seen through ``threading.excepthook`` (chained: the previous
hook still prints "Exception in thread ..."), installed when a runtime starts.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field

MAX_BACKOFF = 30.0  # seconds between two tries of a failing loop, at most

# Threads that ended on an uncaught exception -> "ExceptionType: message".
_deaths: weakref.WeakKeyDictionary[threading.Thread, str] = weakref.WeakKeyDictionary()
_hook_lock = threading.Lock()


def _record(args: threading.ExceptHookArgs) -> None:
    if args.thread is not None:
        _deaths[args.thread] = describe(args.exc_value)


def describe(exc: BaseException | None) -> str:
    """One line for a person: the exception's type and its first 200 characters."""
    if exc is None:
        return "unknown error"
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def install_thread_hook() -> None:
    """Record the threads that die on an uncaught exception, then call the hook that was there
    (idempotent; installed again if someone replaced it since, e.g. a test harness)."""
    with _hook_lock:
        previous = threading.excepthook
        if getattr(previous, "records_deaths", False):
            return

        def hook(args: threading.ExceptHookArgs) -> None:
            _record(args)
            previous(args)

        hook.records_deaths = True  # type: ignore[attr-defined]
        threading.excepthook = hook


def death_of(thread: threading.Thread) -> str | None:
    """Why ``thread`` died, if it ended on an uncaught exception."""
    return _deaths.get(thread)


@dataclass
class LoopHealth:
    """Failed passes in a row of one background loop, and the back-off between its tries."""

    name: str
    limit: int  # failures in a row after which the loop is reported as not recovering
    interval: float = 1.0  # the first back-off; it doubles with each further failure
    failures: int = 0
    last_error: str | None = None
    last_ok: float | None = None  # monotonic time of the last good pass
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def succeeded(self) -> None:
        with self._guard:
            self.failures, self.last_ok = 0, time.monotonic()

    def failed(self, exc: BaseException) -> float:
        """Count a failed pass; returns the seconds to wait before the next try."""
        with self._guard:
            self.failures += 1
            self.last_error = describe(exc)
            return min(MAX_BACKOFF, self.interval * 2 ** min(self.failures - 1, 16))

    def problem(self) -> str | None:
        """What /healthz says about this loop, or None while it is healthy."""
        with self._guard:
            if self.failures < self.limit:
                return None
            return f"{self.name}: {self.failures} passes failed in a row; last: {self.last_error}"

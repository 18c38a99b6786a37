"""Stopping executions hard, and asking again until a stop is accepted.

The dispatcher's recovery (orchestrator/recovery.py) stops an execution whose worker
ignored a cancel past CANCEL_GRACE_SECONDS, and one whose lease expired. The stop
call (Cloud Run ``CancelExecution``) can fail (an outage, a quota), and the
execution then goes on billing its GPU. So a failed call is not the end of it:
the execution is kept here and its stop asked again on later passes once its wait
is over (STOP_RETRY_SECONDS, doubled after each failure up to
STOP_RETRY_MAX_SECONDS), until a call is accepted, also after its job has ended
(no orphaned execution). Whether the execution *has* stopped is the launcher's
``exited``; what the job does meanwhile is the recovery's call.

The waits run on the dispatcher's clock. The memory is this process's: a restarted
service forgets a failing stop, but by then the execution's writes are fenced (its
attempt is closed) and the platform's TASK_TIMEOUT ends it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.config import Settings
from orchestrator.launchers.base import Launcher

log = logging.getLogger(__name__)

KEPT = 1000  # executions remembered, oldest forgotten first


@dataclass
class Failing:
    """An execution whose stop calls failed so far."""

    failures: int
    retry_at: datetime
    error: str


class Stopper:
    """Stop calls with backoff; see the module."""

    def __init__(self, settings: Settings, launcher: Callable[[], Launcher]):
        self.settings = settings
        self._launcher = launcher  # a getter: the backend makes its launcher on first use
        self._failing: dict[str, Failing] = {}
        self._accepted: dict[str, datetime] = {}  # execution -> when a stop call for it was accepted

    def stop(self, execution: str, now: datetime) -> bool:
        """Ask for ``execution`` to stop, unless a call was accepted already or the wait after the
        last failure is not over. True once a stop call for it has been accepted."""
        if execution in self._accepted:
            return True
        failing = self._failing.get(execution)
        if failing is not None and now < failing.retry_at:
            return False
        try:
            self._launcher().stop(execution)
        except Exception as exc:  # noqa: BLE001 - any failure: the execution may still run, ask again later
            self._failed(execution, failing, now, exc)
            return False
        self._failing.pop(execution, None)
        _remember(self._accepted, execution, now)
        if failing is not None:
            log.info("execution %s: stop accepted after %d failed calls", execution, failing.failures)
        return True

    def _failed(self, execution: str, failing: Failing | None, now: datetime, exc: Exception) -> None:
        failures = (failing.failures if failing else 0) + 1
        wait = min(self.settings.STOP_RETRY_MAX_SECONDS, self.settings.STOP_RETRY_SECONDS * 2 ** (failures - 1))
        _remember(self._failing, execution, Failing(failures, now + timedelta(seconds=wait), str(exc)[:300]))
        log.warning("could not stop execution %s (%d failed calls; next in %.1f s): %s",
                    execution, failures, wait, exc)

    def retry(self, now: datetime) -> None:
        """Ask again for the stops that failed and whose wait is over (their jobs may have ended since)."""
        for execution in list(self._failing):
            self.stop(execution, now)

    def failing(self, execution: str) -> Failing | None:
        """The failed calls for ``execution`` so far, None when none failed (or one was accepted since)."""
        return self._failing.get(execution)

    def pending(self) -> list[str]:
        """Executions whose stop has not been accepted yet."""
        return list(self._failing)

    def forget(self, execution: str) -> None:
        """The execution is seen ended: nothing more to ask."""
        self._failing.pop(execution, None)
        self._accepted.pop(execution, None)


def _remember(cache: dict, key: str, value: object) -> None:
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > KEPT:
        cache.pop(next(iter(cache)))

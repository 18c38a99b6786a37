"""Helpers shared by the contract tests: job factories and waiting for the change feed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from orchestrator.domain.cost import rates_for
from orchestrator.domain.job import Job, Origin, Progress
from orchestrator.domain.spec import JobSpec, TrainingParams
from orchestrator.stores.base import ChangeEvent

BASE_TIME = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
RATES = rates_for("nvidia-l4", 1, "4000m", "16Gi")


def make_job(tenant: str = "team-a", *, priority: int = 0, channel: str | None = None, key: str | None = None,
             age: float = 0.0, epochs: int = 10) -> Job:
    """A queued job; ``age`` seconds older than BASE_TIME (so larger ages sort first)."""
    spec = JobSpec(tenant_id=tenant, priority=priority, training_params=TrainingParams(epochs=epochs))
    created = BASE_TIME - timedelta(seconds=age)
    return Job(tenant_id=tenant, spec=spec, created_at=created, updated_at=created, idempotency_key=key,
               origin=Origin(source="slack" if channel else "api", channel=channel),
               progress=Progress(total_epochs=epochs))


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class Recorder:
    """A change-feed callback that keeps what it was given."""

    def __init__(self, fail_on: Callable[[ChangeEvent], bool] | None = None):
        self.events: list[ChangeEvent] = []
        self.fail_on = fail_on
        self._guard = threading.Lock()

    def __call__(self, event: ChangeEvent) -> None:
        with self._guard:
            self.events.append(event)
        if self.fail_on is not None and self.fail_on(event):
            raise RuntimeError("observer failure (expected by the test)")

    def of(self, task_id: str) -> list[ChangeEvent]:
        with self._guard:
            return [e for e in self.events if e.task_id == task_id]

    def versions(self, task_id: str) -> list[int]:
        return [e.job.version for e in self.of(task_id)]

    def saw(self, task_id: str, version: int) -> bool:
        return version in self.versions(task_id)

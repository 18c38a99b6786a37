"""Retention: what finished jobs leave on local disk goes after LAXAI_RETENTION_DAYS.

A sweep looks at what is on disk under ``$LAXAI_HOME`` (``runs/<task>/``,
``logs/<task>.log``, ``artifacts/<task>/``, W&B's offline ``wandb/*-<task>/``), asks the
store about each task, and deletes the files of jobs that finished (completed, failed
or cancelled) more than the retention ago. Kept: anything of a job that is queued or
running, of a task the store does not know (not ours to judge), and every checkpoint a
model-registry entry points at (the registry stays usable; ``registry:NAME`` keeps
working, ``task:ID`` of a swept job does not). Job records themselves stay in the store.

The service runs a sweep at start and then every ``SWEEP_INTERVAL`` seconds on its own
thread; ``sweep()`` can be called directly (tests, a cron job).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from orchestrator.domain.job import Job, utcnow
from orchestrator.registry.base import ModelRegistry
from orchestrator.stores.base import JobStore

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 3600.0
TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REGISTRY_LOOKUP_LIMIT = 10_000


@dataclass
class SweepResult:
    """What one sweep deleted and kept."""

    jobs: set[str] = field(default_factory=set)  # tasks whose files were (partly) deleted
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # registry-referenced checkpoints
    freed_bytes: int = 0


class RetentionSweeper:
    """Deletes the local runs, logs and artifacts of jobs finished longer ago than ``days``."""

    def __init__(self, home: Path, store: JobStore, registry: ModelRegistry, days: float,
                 clock: Callable[[], datetime] = utcnow, interval: float = SWEEP_INTERVAL):
        self.home, self.store, self.registry = home, store, registry
        self.days, self.clock, self.interval = days, clock, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what is on disk ------------------------------------------------------

    def _candidates(self) -> dict[str, list[Path]]:
        """task id -> its paths under LAXAI_HOME."""
        found: dict[str, list[Path]] = {}

        def add(path: Path, name: str) -> None:
            match = TASK_ID.search(name)
            if match:
                found.setdefault(match.group(0), []).append(path)

        for folder in ("runs", "artifacts"):
            for path in (self.home / folder).glob("*"):
                if TASK_ID.fullmatch(path.name):
                    add(path, path.name)
        for path in (self.home / "logs").glob("*.log"):
            add(path, path.stem)
        for path in (self.home / "wandb").glob("*run-*"):
            add(path, path.name)
        return found

    def _expired(self, job: Job | None, cutoff: datetime) -> bool:
        return (job is not None and job.status.is_terminal() and job.finished_at is not None
                and job.finished_at < cutoff)

    def _registered(self, job: Job) -> set[Path]:
        """Checkpoints of this job that registry entries point at."""
        if not job.artifacts.registry_name:
            return set()
        entries = self.registry.list(job.tenant_id, job.artifacts.registry_name, limit=REGISTRY_LOOKUP_LIMIT)
        return {Path(e.checkpoint).resolve() for e in entries if e.task_id == job.task_id
                and "://" not in e.checkpoint}

    # -- deleting ---------------------------------------------------------------

    def _remove(self, path: Path, keep: set[Path], result: SweepResult) -> None:
        """Delete ``path`` (a file or a tree), except the kept files inside it."""
        if path.is_dir() and not path.is_symlink():
            for child in list(path.iterdir()):
                self._remove(child, keep, result)
            try:
                path.rmdir()  # fails, rightly, when a kept file is inside
            except OSError:
                pass
            return
        if path.resolve() in keep:
            result.kept.append(path)
            return
        try:
            size = path.lstat().st_size
            path.unlink()
        except FileNotFoundError:
            return
        result.removed.append(path)
        result.freed_bytes += size

    def sweep(self, now: datetime | None = None) -> SweepResult:
        """One pass; never raises for one job's trouble (logged, and the next pass tries again)."""
        result = SweepResult()
        if self.days <= 0:
            return result
        cutoff = (now or self.clock()) - timedelta(days=self.days)
        for task_id, paths in self._candidates().items():
            try:
                job = self.store.get(task_id)
                if not self._expired(job, cutoff):
                    continue
                keep = self._registered(job)
                for path in paths:
                    self._remove(path, keep, result)
                result.jobs.add(task_id)
            except Exception:  # noqa: BLE001 - one job's trouble never stops the sweep
                log.warning("retention sweep skipped %s", task_id, exc_info=True)
        if result.jobs:
            log.info("retention: deleted %d files (%.1f MB) of %d jobs finished over %g days ago; kept %d "
                     "registered checkpoints", len(result.removed), result.freed_bytes / 1e6, len(result.jobs),
                     self.days, len(result.kept))
        return result

    # -- background loop --------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - e.g. the store is briefly unavailable; try next time
                log.warning("retention sweep failed", exc_info=True)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

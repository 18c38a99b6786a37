"""Open the local backend's parts: one SQLite file (jobs, queue, registry) and a directory of artifacts.

Everything lives under LAXAI_HOME, so a laptop needs no cloud, no Java and no account.
"""

from __future__ import annotations

from orchestrator.artifacts.local import LocalArtifactStore
from orchestrator.config import Settings
from orchestrator.queues.local import LocalJobQueue
from orchestrator.registry.sqlite import SqliteModelRegistry
from orchestrator.stores.sqlite import SqliteJobStore


def open_local_parts(settings: Settings) -> tuple[SqliteJobStore, LocalJobQueue, LocalArtifactStore,
                                                  SqliteModelRegistry]:
    """(store, queue, artifacts, registry) for ``LAXAI_BACKEND=local``."""
    settings.home.mkdir(parents=True, exist_ok=True)
    store = SqliteJobStore(settings.db_path, write_gap=settings.write_gap, timeout=settings.STORE_TIMEOUT)
    queue = LocalJobQueue(settings.db_path)
    artifacts = LocalArtifactStore(settings.home / "artifacts")
    registry = SqliteModelRegistry(settings.db_path)
    return store, queue, artifacts, registry

"""Assemble a backend (store, queue, launcher, artifacts, registry) from Settings.

``local``: SQLite file, local queue, worker subprocesses, a directory of artifacts.
``gcp``: Firestore, Pub/Sub, Cloud Run Jobs (or local subprocesses when
``LAXAI_LAUNCHER=local``, for one-laptop runs on the emulators), GCS artifacts.
Cloud SDKs are imported only inside their adapter modules, and only here on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.artifacts.base import ArtifactStore
from orchestrator.config import Settings
from orchestrator.launchers.base import Launcher
from orchestrator.queues.base import JobQueue
from orchestrator.registry.base import ModelRegistry
from orchestrator.stores.base import JobStore


@dataclass
class Backend:
    """Everything that talks to storage and compute, behind contracts."""

    settings: Settings
    store: JobStore
    queue: JobQueue
    artifacts: ArtifactStore
    registry: ModelRegistry
    _launcher: Launcher | None = field(default=None, repr=False)

    @property
    def launcher(self) -> Launcher:
        """Made on first use: workers never need one."""
        if self._launcher is None:
            self._launcher = make_launcher(self.settings)
        return self._launcher

    @property
    def name(self) -> str:
        return self.settings.LAXAI_BACKEND

    def close(self) -> None:
        for part in (self.queue, self.store, self._launcher):
            if part is not None:
                part.close()
        close = getattr(self.registry, "close", None)
        if close:
            close()


def launcher_kind(settings: Settings) -> str:
    """``cloudrun`` or ``local``: LAXAI_LAUNCHER, where ``auto`` means Cloud Run on the gcp backend."""
    kind = settings.LAXAI_LAUNCHER
    if kind == "auto":
        kind = "cloudrun" if settings.LAXAI_BACKEND == "gcp" else "local"
    return kind


def gpu_types_available(settings: Settings) -> tuple[str, ...]:
    """The ``gpu_type`` values jobs may ask for here: GPU_TYPES_AVAILABLE, else what the launcher
    can run: a Cloud Run job has the one GPU type it was deployed with (GPU_TYPE); local workers
    run on this machine's GPU (GPU_TYPE, the price it is billed at) or its CPU."""
    if settings.GPU_TYPES_AVAILABLE:
        return settings.GPU_TYPES_AVAILABLE
    if launcher_kind(settings) == "cloudrun":
        return (settings.GPU_TYPE,)
    return tuple(dict.fromkeys((settings.GPU_TYPE, "cpu")))


def make_launcher(settings: Settings) -> Launcher:
    kind = launcher_kind(settings)
    if kind == "cloudrun":
        from orchestrator.launchers.cloudrun import CloudRunJobLauncher

        return CloudRunJobLauncher.from_settings(settings)
    from orchestrator.launchers.local import LocalProcessLauncher

    return LocalProcessLauncher(settings.home, memory_limit=settings.worker_memory_bytes,
                                cgroup_root=settings.WORKER_CGROUP_ROOT, warm=settings.WARM_WORKERS)


def open_backend(settings: Settings, launcher: Launcher | None = None) -> Backend:
    """Open the configured backend's parts."""
    if settings.LAXAI_BACKEND == "gcp":
        from orchestrator.backends.gcp import open_gcp_parts

        store, queue, artifacts, registry = open_gcp_parts(settings)
    else:
        from orchestrator.backends.local import open_local_parts

        store, queue, artifacts, registry = open_local_parts(settings)
    return Backend(settings, store, queue, artifacts, registry, launcher)

"""Local ArtifactStore: ``<LAXAI_HOME>/artifacts/<task_id>/<name>``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from orchestrator.artifacts.base import ArtifactStore


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path):
        self.root = root

    def _path(self, task_id: str, name: str) -> Path:
        if "/" in task_id or "/" in name or name.startswith("."):
            raise ValueError(f"bad artifact name {task_id}/{name}")
        return self.root / task_id / name

    def uri(self, task_id: str, name: str) -> str:
        return str(self._path(task_id, name))

    def upload(self, task_id: str, name: str, source: Path) -> str:
        target = self._path(task_id, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{name}.partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)  # a reader never sees half a checkpoint
        return str(target)

    def download(self, task_id: str, name: str, dest: Path) -> bool:
        source = self._path(task_id, name)
        if not source.exists():
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.resolve() != dest.resolve():
            shutil.copyfile(source, dest)
        return True

    def exists(self, task_id: str, name: str) -> bool:
        return self._path(task_id, name).exists()

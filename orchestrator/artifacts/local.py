"""Local ArtifactStore: ``<LAXAI_HOME>/artifacts/<task_id>/<name>``.

Fencing (see ``artifacts.base``): beside each file, ``.<name>.attempt`` holds the attempt that
owns it, and ``.<name>.lock`` (an ``flock``) makes check-then-replace one step for every
process on this machine. The owner is recorded before the file is replaced, so a crash between
the two leaves the file fenced against earlier attempts, never open to them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orchestrator.artifacts.base import ArtifactStore, check_owner


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path):
        self.root = root

    def _path(self, task_id: str, name: str) -> Path:
        if "/" in task_id or "/" in name or name.startswith("."):
            raise ValueError(f"bad artifact name {task_id}/{name}")
        return self.root / task_id / name

    def uri(self, task_id: str, name: str) -> str:
        return str(self._path(task_id, name))

    def upload(self, task_id: str, name: str, source: Path, attempt: int | None = None) -> str:
        target = self._path(task_id, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, staged = tempfile.mkstemp(prefix=f".{name}.partial.", dir=target.parent)
        os.close(handle)
        partial = Path(staged)
        shutil.copyfile(source, partial)  # the slow part, outside the lock
        try:
            with self._fenced(task_id, name, attempt):
                os.replace(partial, target)  # a reader never sees half a checkpoint
        finally:
            partial.unlink(missing_ok=True)
        return str(target)

    def claim(self, task_id: str, name: str, attempt: int) -> None:
        self._path(task_id, name).parent.mkdir(parents=True, exist_ok=True)
        with self._fenced(task_id, name, attempt):
            pass

    def owner(self, task_id: str, name: str) -> int | None:
        """The attempt that owns the file, None when no fenced write or claim was made."""
        marker = self._marker(task_id, name)
        try:
            return int(marker.read_text())
        except (FileNotFoundError, ValueError):
            return None

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

    def _marker(self, task_id: str, name: str) -> Path:
        return self._path(task_id, name).with_name(f".{name}.attempt")

    @contextlib.contextmanager
    def _fenced(self, task_id: str, name: str, attempt: int | None) -> Iterator[None]:
        """Hold the file's lock; refuse (Superseded) an attempt earlier than its owner, else record it."""
        if attempt is None:
            yield
            return
        lock = self._path(task_id, name).with_name(f".{name}.lock")
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
            check_owner(task_id, name, attempt, self.owner(task_id, name))
            marker = self._marker(task_id, name)
            partial = marker.with_name(f"{marker.name}.partial")  # only the lock holder writes it
            partial.write_text(str(attempt))
            os.replace(partial, marker)
            yield

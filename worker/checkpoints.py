"""Checkpoints: find a resumable last.pt for a job, and upload new ones without stalling training.

Every epoch Ultralytics writes ``last.pt`` (and ``best.pt`` when the model
improved). ``CheckpointUploader`` copies each to a private staging file at once
(Ultralytics overwrites last.pt in place, so an upload racing the next save
could send half a file) and uploads it to the artifact store on its own thread,
so another execution, possibly on another machine, can resume from it.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.artifacts.base import ArtifactStore
from worker.stop import StopFlags

log = logging.getLogger(__name__)

LAST, BEST = "last.pt", "best.pt"
RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class ResumePoint:
    """A checkpoint Ultralytics can continue from."""

    path: Path
    epochs_done: int  # finished epochs; training continues with the next one
    total_epochs: int


def inspect(path: Path) -> tuple[int, int, bool]:
    """(finished epochs, total epochs, has optimizer state) of an Ultralytics checkpoint."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # our own file: full unpickling is fine
    epoch = int(ckpt.get("epoch", -1))
    total = int((ckpt.get("train_args") or {}).get("epochs", 0))
    return epoch + 1, total, ckpt.get("optimizer") is not None


def fetch_resume(artifacts: ArtifactStore, task_id: str, weights_dir: Path) -> ResumePoint | None:
    """Download the job's last.pt into ``weights_dir``; a ResumePoint when training can continue from it.

    Ultralytics resumes only an unfinished run (0 < finished epochs < total) that still holds its
    optimizer state; anything else starts a fresh run, and the log says why.
    """
    dest = weights_dir / LAST
    try:
        if not artifacts.download(task_id, LAST, dest):
            return None
        done, total, has_optimizer = inspect(dest)
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint costs the progress, not the job
        log.warning("checkpoint %s of %s cannot be read (%s: %s); starting fresh", LAST, task_id,
                    type(exc).__name__, exc)
        return None
    if not has_optimizer or done <= 0:
        log.warning("checkpoint of %s is not resumable (finished run, optimizer stripped); starting fresh", task_id)
        return None
    if done >= total:
        log.warning("checkpoint of %s already has all %d epochs; Ultralytics cannot resume a finished run, "
                    "starting fresh", task_id, total)
        return None
    log.info("resuming %s from its checkpoint: %d of %d epochs done", task_id, done, total)
    return ResumePoint(dest, done, total)


@dataclass(frozen=True)
class Uploaded:
    """A checkpoint that reached the artifact store."""

    uri: str
    saved_at: float  # time.monotonic() when Ultralytics wrote it
    epochs_done: int


@dataclass
class _Pending:
    staged: Path
    saved_at: float
    epochs_done: int


class CheckpointUploader:
    """Uploads the newest checkpoint of each name in the background; older pending ones are dropped."""

    def __init__(self, artifacts: ArtifactStore, task_id: str, staging: Path, flags: StopFlags):
        self.artifacts, self.task_id, self.staging, self.flags = artifacts, task_id, staging, flags
        self.uploaded: dict[str, Uploaded] = {}
        self._pending: dict[str, _Pending] = {}
        self._staged: dict[str, Path] = {}  # the newest staged file of each name
        self._busy = False
        self._retry_at = 0.0
        self._cond = threading.Condition()
        self._stopping = False
        self._seq = itertools.count()
        self._thread = threading.Thread(target=self._run, name="checkpoint-upload", daemon=True)

    def start(self) -> None:
        self.staging.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def submit(self, name: str, source: Path, epochs_done: int, saved_at: float | None = None,
               same_as: str | None = None) -> None:
        """Stage a copy of ``source`` now (fast, local) and upload it soon. ``same_as`` names a checkpoint
        just submitted with the very same bytes (Ultralytics writes best.pt from last.pt's buffer): its
        staged copy is hard-linked instead of copying the file again (staged files are never rewritten)."""
        staged = self.staging / f"{name}.{next(self._seq)}"
        twin = self._staged.get(same_as) if same_as else None
        try:
            if twin is None:
                raise FileNotFoundError
            os.link(twin, staged)
        except OSError:  # no twin, already uploaded and removed, or no hard links here: copy
            shutil.copyfile(source, staged)
        self._staged[name] = staged
        item = _Pending(staged, time.monotonic() if saved_at is None else saved_at, epochs_done)
        with self._cond:
            older = self._pending.pop(name, None)
            self._pending[name] = item
            self._retry_at = 0.0
            self._cond.notify_all()
        if older is not None:
            older.staged.unlink(missing_ok=True)

    def upload_now(self, name: str, source: Path, epochs_done: int, attempts: int = 3) -> str:
        """Upload synchronously (final checkpoints); raises after ``attempts`` failures."""
        for attempt in range(1, attempts + 1):
            try:
                uri = self.artifacts.upload(self.task_id, name, source)
                break
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("upload of %s failed (attempt %d/%d); retrying", name, attempt, attempts, exc_info=True)
                time.sleep(attempt)
        self.uploaded[name] = Uploaded(uri, time.monotonic(), epochs_done)
        return uri

    def drain(self, timeout: float) -> bool:
        """Wait until everything staged is uploaded (retrying failures at once); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._retry_at = 0.0
            self._cond.notify_all()
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.flags.lost or not self._thread.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.2))
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        shutil.rmtree(self.staging, ignore_errors=True)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._pending or time.monotonic() < self._retry_at):
                    wait = self._retry_at - time.monotonic() if self._pending else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                name = next(iter(self._pending))
                item = self._pending.pop(name)
                self._busy = True
            try:
                self._upload(name, item)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _upload(self, name: str, item: _Pending) -> None:
        if self.flags.lost:  # another execution owns the job now: never overwrite its checkpoints
            item.staged.unlink(missing_ok=True)
            return
        try:
            uri = self.artifacts.upload(self.task_id, name, item.staged)
        except Exception as exc:  # noqa: BLE001 - keep training; retry with this or a newer checkpoint
            log.warning("upload of %s failed (%s: %s); retrying in %.0f s", name, type(exc).__name__, exc,
                        RETRY_SECONDS)
            with self._cond:
                if name in self._pending:  # a newer one came meanwhile
                    item.staged.unlink(missing_ok=True)
                else:
                    self._pending[name] = item
                self._retry_at = time.monotonic() + RETRY_SECONDS
            return
        item.staged.unlink(missing_ok=True)
        self.uploaded[name] = Uploaded(uri, item.saved_at, item.epochs_done)
        log.info("uploaded %s (epoch %d) to %s", name, item.epochs_done, uri)

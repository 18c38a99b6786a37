"""Checkpoints: find a resumable last.pt for a job, and upload new ones without stalling training.

Every epoch Ultralytics writes ``last.pt`` (and ``best.pt`` when the model
improved). ``CheckpointUploader`` copies each to a private staging file at once
(Ultralytics overwrites last.pt in place, so an upload racing the next save
could send half a file) and uploads it to the artifact store on its own thread,
so another execution, possibly on another machine, can resume from it.

Zombie fencing: every upload names this attempt, and the artifact store refuses it once a later
attempt owns the file (``artifacts.base``: check and replace are one atomic step on the file).
The uploader claims ``last.pt`` and ``best.pt`` for its attempt when it starts, which is after
the attempt's fenced start write, so an execution whose lease was taken can no longer replace
the new attempt's checkpoints from that moment on. A refused upload means the attempt is no
longer ours: the worker raises its ``lost`` flag and stops without writing.

Every checkpoint the worker loads (its own last.pt to resume, a user's starting weights, a
registry or task reference) goes through Ultralytics' restricted loader
(``torch.load(weights_only=True)`` with an allow-list of model classes, see ``load_safely``):
a pickle that would run code is refused and the job fails with reason ``bad_weights``.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.artifacts.base import ArtifactStore, Superseded
from orchestrator.trust import checks, roots, weights
from worker.stop import StopFlags, StopReason

log = logging.getLogger(__name__)

LAST, BEST = "last.pt", "best.pt"
RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class ResumePoint:
    """A checkpoint Ultralytics can continue from."""

    path: Path
    epochs_done: int  # finished epochs; training continues with the next one
    total_epochs: int


class BadWeights(Exception):
    """A checkpoint the job may not or cannot load: refused by the safe loader, not the tenant's, or
    unavailable. The message is for the user (no server paths); the job fails with ``bad_weights``."""

    def __init__(self, message: str, refused: bool = False):
        super().__init__(message)
        self.refused = refused  # the safe loader refused the pickle (not merely an unreadable file)


def load_safely(path: Path, what: str = "model_params.weights") -> dict:
    """The checkpoint, loaded by Ultralytics' restricted loader; BadWeights when it is refused.

    Call after worker.offline.prepare (Ultralytics must be importable in its offline set-up)."""
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the loader refuses, the file is not usable
        refused = isinstance(exc.__cause__, pickle.UnpicklingError) or isinstance(exc, pickle.UnpicklingError)
        why = ("it references code or types outside the Ultralytics checkpoint format (refused by the safe "
               "loader; nothing in it was run)" if refused else f"it cannot be read ({type(exc).__name__})")
        raise BadWeights(f"{what}: not a loadable Ultralytics checkpoint: {why}", refused) from exc
    if not isinstance(ckpt, dict):
        raise BadWeights(f"{what}: not an Ultralytics checkpoint (expected a checkpoint dictionary)")
    return ckpt


def inspect(path: Path) -> tuple[int, int, bool]:
    """(finished epochs, total epochs, has optimizer state) of an Ultralytics checkpoint, safely loaded."""
    ckpt = load_safely(path, "resume checkpoint last.pt")
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
    except BadWeights as exc:
        if exc.refused:
            raise  # code in our own checkpoint: someone tampered with it; never resume from it
        log.warning("checkpoint %s of %s cannot be read (%s); starting fresh", LAST, task_id, exc)
        return None
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


def fetch_weights(text: str, tenant: str, backend, data_roots: list[Path], weights_dir: Path,  # noqa: ANN001
                  dest: Path) -> Path:
    """The file of a job's starting weights (``model_params.weights``), checked and safely loaded once.

    References are resolved again here (the tenant's own registry entry or finished job; a file inside
    its data roots, copied to ``dest`` so the file checked is the file trained from); a pretrained name
    comes from Ultralytics' weights directory (downloaded there when the network allows)."""
    try:
        ref = weights.parse(text)
    except weights.WeightsError as exc:
        raise BadWeights(f"{weights.FIELD}: {exc}") from None
    if isinstance(ref, weights.PretrainedWeights):
        path = pretrained(ref.name, weights_dir)
    elif isinstance(ref, weights.FileWeights):
        try:
            source = roots.resolve_inside(ref.path, data_roots)
        except roots.OutsideRoots:
            raise BadWeights(f"{weights.FIELD}: {roots.NOT_IN_ROOTS}") from None
        if not source.is_file():
            raise BadWeights(f"{weights.FIELD}: {roots.NOT_IN_ROOTS}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        path = dest
    else:
        path = _fetch_reference(ref, tenant, backend, dest)
    load_safely(path)
    return path


def _fetch_reference(ref, tenant: str, backend, dest: Path) -> Path:  # noqa: ANN001
    """best.pt/last.pt of the tenant's own registry entry or finished job, downloaded to ``dest``."""
    if isinstance(ref, weights.RegistryWeights):
        entry = checks.registry_entry(backend, tenant, ref)
        task_id, name = (entry.task_id, BEST) if entry is not None else (None, BEST)
    else:
        ready = checks.task_checkpoint_ready(backend, tenant, ref)
        task_id, name = (ref.task_id, ref.file) if ready else (None, ref.file)
    if task_id is None or not backend.artifacts.download(task_id, name, dest):
        raise BadWeights(f"{weights.FIELD}: {weights.describe(ref)} is not (or no longer) available to you")
    return dest


def pretrained(name: str, weights_dir: Path) -> Path:
    """An official pretrained checkpoint from Ultralytics' weights directory, downloaded once when the
    network allows (one try, no retries: offline this fails within the connect timeout, never hangs)."""
    path = weights_dir / name
    if not path.is_file():
        from ultralytics.utils.downloads import attempt_download_asset

        try:
            attempt_download_asset(str(path), retry=0)
        except Exception as exc:  # noqa: BLE001 - offline, or GitHub unreachable: say so below
            log.warning("download of pretrained %s failed: %s: %s", name, type(exc).__name__, exc)
    if not path.is_file():
        raise BadWeights(f"{weights.FIELD}: pretrained {name} is not on this worker and could not be downloaded "
                         "(no network?); put it in LAXAI_HOME/weights/ on the worker, or start from "
                         "registry:NAME or task:ID weights")
    return path


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

    def __init__(self, artifacts: ArtifactStore, task_id: str, staging: Path, flags: StopFlags, attempt: int):
        self.artifacts, self.task_id, self.staging, self.flags = artifacts, task_id, staging, flags
        self.attempt = attempt  # the fencing token every upload carries
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
        """Claim the job's checkpoints for this attempt (call after the fenced start write), then upload."""
        self.staging.mkdir(parents=True, exist_ok=True)
        for name in (LAST, BEST):
            try:
                self.artifacts.claim(self.task_id, name, self.attempt)
            except Superseded as exc:
                self._superseded(exc)
            except Exception as exc:  # noqa: BLE001 - each upload is fenced anyway; the claim only starts it earlier
                log.warning("claim of %s failed (%s: %s); uploads stay fenced", name, type(exc).__name__, exc)
        self._thread.start()

    def _superseded(self, exc: Superseded) -> None:
        log.error("checkpoint refused: %s; this attempt is no longer current, stopping without writing", exc)
        self.flags.set(StopReason.LOST, f"artifact store: a later attempt ({exc.owner}) owns the checkpoints")

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
        """Upload synchronously (final checkpoints); raises after ``attempts`` failures. When a later
        attempt owns the file nothing is uploaded: ``flags.lost`` is set and "" returned."""
        for tried in range(1, attempts + 1):
            try:
                uri = self.artifacts.upload(self.task_id, name, source, attempt=self.attempt)
                break
            except Superseded as exc:
                self._superseded(exc)
                return ""
            except Exception:
                if tried == attempts:
                    raise
                log.warning("upload of %s failed (try %d/%d); retrying", name, tried, attempts, exc_info=True)
                time.sleep(tried)
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
            uri = self.artifacts.upload(self.task_id, name, item.staged, attempt=self.attempt)
        except Superseded as exc:
            item.staged.unlink(missing_ok=True)
            self._superseded(exc)
            return
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

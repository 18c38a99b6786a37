"""How an attempt's work ended, what a failure is called, and what its user is told.

Failure reasons (``JobError.reason``) the worker gives:

- ``gpu_unavailable``: REQUIRE_GPU and no CUDA device (worker/gpu.py); the attempt ends with
  ``EndReason.GPU_UNAVAILABLE`` and the job fails at once, before any dataset work.
- ``bad_weights``: a checkpoint refused by the safe loader, not the tenant's, or unavailable
  (worker/checkpoints.py ``BadWeights``), including the job's own last.pt when it was tampered with.
- ``dataset_error``: our ``DatasetError`` (worker/datasets.py), or a dataset problem Ultralytics
  found itself (its message starts with ``Dataset '``).
- ``diverged``: the training loss became NaN or infinite (worker/watchdog.py ``Diverged``); the
  attempt ends with ``EndReason.DIVERGED`` and the job fails, saying the epoch, the batch and a hint.
- ``out_of_memory``: training ran out of memory (``is_out_of_memory``: CUDA's OutOfMemoryError and
  its kin); the attempt ends with ``EndReason.OUT_OF_MEMORY`` and the closing path retries the job
  with half the batch or fails it (orchestrator/domain/oom.py).
- ``training_error``: anything else training raised; ``worker_error``: the worker itself failed
  (set-up, or a bug of ours); ``artifact_error`` (worker/closing.py): the results could not be stored.

What the user sees comes from worker/error_text.py: the exception and the job's own output, no
server paths and no traceback; the traceback goes to the log.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.domain.job import EndReason, JobError
from worker import checkpoints, datasets
from worker.error_text import user_error_text
from worker.gpu import GpuUnavailable
from worker.stop import StopReason, TrainingStopped
from worker.watchdog import Diverged

log = logging.getLogger(__name__)

TAIL_LINES = 15


@dataclass(frozen=True)
class Trained:
    """What a finished training run left: its checkpoints and final metrics."""

    epochs_done: int  # finished epochs of the job (an early stop may leave fewer than asked for)
    last_path: Path
    best_path: Path | None  # None when Ultralytics wrote no best.pt
    metrics: dict[str, float]


@dataclass(frozen=True)
class Outcome:
    """How training ended: exactly one of completed, stopped early, failed."""

    completed: Trained | None = None
    stopped: StopReason | None = None
    error: JobError | None = None
    end: EndReason = EndReason.FAILED  # why the attempt ended, with ``error``


@dataclass(frozen=True)
class Failure:
    """A failure before the attempt started: what the user sees, and why the attempt ended."""

    error: JobError
    end: EndReason = EndReason.FAILED


def error_from(exc: BaseException, reason: str = "training_error", home: Path | None = None,
               log_file: Path | None = None) -> JobError:
    """What the user sees (worker/error_text.py): the exception and the job's own output, no server
    paths and no traceback; the traceback goes to the log (every caller logs it)."""
    message, tail = user_error_text(exc, home or Path.cwd(), log_file, TAIL_LINES)
    return JobError(reason=reason, message=message, tail=tail)


def setup_failure(exc: Exception, home: Path, log_file: Path) -> Failure:
    """The failure of a set-up that raised ``exc`` (logged here)."""
    if isinstance(exc, checkpoints.BadWeights):  # our own last.pt refused by the safe loader: never resume from it
        log.error("%s", exc)
        return Failure(JobError(reason="bad_weights", message=str(exc)))
    if isinstance(exc, GpuUnavailable):  # before any dataset work: fail within seconds, never train on the CPU
        log.error("%s", exc)
        return Failure(JobError(reason="gpu_unavailable", message=str(exc)), EndReason.GPU_UNAVAILABLE)
    # e.g. a bad YOLO_DEVICE: fail the job, say why
    log.error("worker set-up failed", exc_info=exc)
    return Failure(error_from(exc, "worker_error", home, log_file))


def training_outcome(exc: Exception, home: Path, log_file: Path) -> Outcome:
    """The outcome of a training step that raised ``exc`` (logged here)."""
    if isinstance(exc, datasets.DatasetError):
        log.error("dataset error: %s", exc)
        return Outcome(error=JobError(reason="dataset_error", message=str(exc)))
    if isinstance(exc, checkpoints.BadWeights):
        log.error("bad weights: %s", exc)
        return Outcome(error=JobError(reason="bad_weights", message=str(exc)))
    if isinstance(exc, TrainingStopped):
        log.info("training stopped: %s", exc.reason.value)
        return Outcome(stopped=exc.reason)
    if is_out_of_memory(exc):
        log.error("out of memory in training", exc_info=exc)
        return Outcome(error=error_from(exc, EndReason.OUT_OF_MEMORY.value, home, log_file), end=EndReason.OUT_OF_MEMORY)
    if isinstance(exc, Diverged):
        log.error("%s", exc)
        return Outcome(error=JobError(reason=EndReason.DIVERGED.value, message=str(exc)), end=EndReason.DIVERGED)
    log.error("training failed", exc_info=exc)
    # Ultralytics wraps dataset problems it finds itself as "Dataset '...' error".
    reason = "dataset_error" if str(exc).startswith("Dataset '") else "training_error"
    return Outcome(error=error_from(exc, reason, home, log_file))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether training ran out of memory: torch's OutOfMemoryError (CUDA), a RuntimeError saying so (other
    accelerators, as Ultralytics recognises them), or Python's own MemoryError."""
    torch = sys.modules.get("torch")  # loaded by training; never imported here just to ask
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())

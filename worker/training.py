"""Ultralytics training of one attempt, with callbacks that report, checkpoint and stop.

``TrainingSession.train`` runs ``YOLO(...).train(...)`` in the calling thread.
Its callbacks never wait on the store: they hand progress to the reporter
thread, stage checkpoints for the upload thread, and stop training by raising
``TrainingStopped`` (see worker.stop) when another thread asked for it or a
time budget ran out. Import this module only after ``worker.offline.prepare``.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config import Settings
from orchestrator.domain.epochs import row_from
from orchestrator.domain.job import Progress
from orchestrator.domain.spec import JobSpec
from worker.checkpoints import BEST, LAST, CheckpointUploader, ResumePoint
from worker.gpu import GpuUnavailable, gpu_unavailable_message, nvidia_driver
from worker.outcome import Trained
from worker.reporter import ProgressReporter
from worker.stop import StopCheck
from worker.timing import TrainingClock
from worker.wandb_log import WandbRun
from worker.watchdog import Diverged, StallWatch, loop_steps, non_finite_loss

log = logging.getLogger(__name__)

# Our metric names -> Ultralytics' detection metric keys.
METRIC_KEYS = {
    "precision": "metrics/precision(B)",
    "recall": "metrics/recall(B)",
    "mAP50": "metrics/mAP50(B)",
    "mAP50-95": "metrics/mAP50-95(B)",
}
SEED = 0
GPU_WORKERS = 2  # dataloader processes on a GPU machine; Ultralytics uses 0 on CPU anyway


@dataclass(frozen=True)
class Device:
    """Where training runs: Ultralytics' device argument and a description for people."""

    arg: str  # "cpu" or a CUDA index like "0"
    description: str  # "cpu" or "cuda:0 NVIDIA L4"

    @property
    def is_gpu(self) -> bool:
        return self.arg != "cpu"


def pick_device(settings: Settings, require_gpu: bool = False) -> Device:
    """The GPU when there is one, else the CPU; YOLO_DEVICE ("cpu", "0", "cuda:1") overrides.
    With ``require_gpu`` no CUDA device raises GpuUnavailable instead of falling back to the CPU."""
    import torch

    forced = (settings.YOLO_DEVICE or "").strip().lower()
    if forced == "cpu":
        if require_gpu:  # the GPU requirement guards what is billed: it wins over a stray setting
            raise GpuUnavailable("REQUIRE_GPU is set but YOLO_DEVICE=cpu forces the CPU; unset one of them")
        return Device("cpu", "cpu")
    if forced:
        # One device only: multi-GPU (DDP) would run training in subprocesses our callbacks never see.
        index = forced.removeprefix("cuda:").split(",")[0].strip()
        if not index.isdigit():
            raise ValueError(f"YOLO_DEVICE={settings.YOLO_DEVICE!r}: use 'cpu' or a CUDA index like '0'")
        if not torch.cuda.is_available() or int(index) >= torch.cuda.device_count():
            raise ValueError(f"YOLO_DEVICE={settings.YOLO_DEVICE!r} but no such CUDA GPU is visible")
        return Device(index, f"cuda:{index} {torch.cuda.get_device_name(int(index))}")
    if torch.cuda.is_available():
        return Device("0", f"cuda:0 {torch.cuda.get_device_name(0)}")
    if require_gpu:
        raise GpuUnavailable(gpu_unavailable_message(torch.__version__, torch.version.cuda, *nvidia_driver()))
    return Device("cpu", "cpu")


def pick_metrics(values: dict[str, Any] | None) -> dict[str, float]:
    """precision, recall, mAP50 and mAP50-95 from Ultralytics' metrics dict (those present)."""
    values = values or {}
    return {ours: float(values[theirs]) for ours, theirs in METRIC_KEYS.items() if theirs in values}


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _total_loss(trainer: Any) -> float | None:
    loss = getattr(trainer, "tloss", None)
    if not loss:
        return None
    items = loss.values() if isinstance(loss, dict) else loss
    return round(sum(float(v) for v in items), 5)


@dataclass
class TrainingSession:
    """One attempt's training run and what it has reached so far."""

    spec: JobSpec
    data_yaml: Path
    run_dir: Path  # $LAXAI_HOME/runs/<task_id>; Ultralytics writes into run_dir/train
    device: Device
    resume: ResumePoint | None
    stop: StopCheck  # the stop flags and the attempt's time budget, checked after every batch
    reporter: ProgressReporter
    uploader: CheckpointUploader
    wandb: WandbRun
    weights: Path | None = None  # the checked local file of model_params.weights, when given
    clock: TrainingClock = field(default_factory=TrainingClock)  # the loop's times, for the cost split
    attempt: int = 1  # the attempt's number (test faults, worker/inject.py, tell the first one apart)
    # The batch to train with: the job's (Job.batch_size: halved after running out of memory); None: the spec's.
    batch: int | None = None
    watch: StallWatch | None = None  # the stall watchdog (worker/watchdog.py), armed while the loop runs
    epochs_done: int = 0  # finished epochs of the job (not only of this attempt)
    start_epoch: int = field(default=0, init=False)  # where this attempt began
    final_metrics: dict[str, float] = field(default_factory=dict)
    _batch: int = 0
    _batches: int = 0
    _train_started: float | None = None
    _saved_epoch: int | None = None
    _next_offer: float = 0.0
    _first_batch_logged: bool = False

    def __post_init__(self) -> None:
        self.epochs_done = self.resume.epochs_done if self.resume else 0
        self.start_epoch = self.epochs_done

    @property
    def total_epochs(self) -> int:
        return self.spec.training_params.epochs

    @property
    def save_dir(self) -> Path:
        return self.run_dir / "train"

    # -- the run ---------------------------------------------------------------

    def train(self) -> Trained:
        """Train to the end; returns what the run left. Raises TrainingStopped when stopped early."""
        from ultralytics import YOLO

        if self.resume is not None:
            # Ultralytics restores epochs, optimizer, lr schedule and EMA from the checkpoint; save_dir
            # points the run at this machine's directory rather than the one the checkpoint remembers.
            model = YOLO(str(self.resume.path))
            args: dict[str, Any] = {**self._common_args(), "resume": True, "save_dir": str(self.save_dir)}
        else:
            params = self.spec.model_params
            if params.weights and self.weights is None:
                raise ValueError("model_params.weights was not fetched and checked (worker.checkpoints.fetch_weights)")
            # Starting weights: the local file fetch_weights checked (Ultralytics loads it with its safe loader).
            model = YOLO(str(self.weights) if params.weights else f"{params.architecture}.yaml")
            args = self._fresh_args()
        self._add_callbacks(model)
        # Timing lines (two per attempt) that bench/ reads to compare with a bare YOLO(...).train(...).
        started_wall, started, cpu = time.time(), time.monotonic(), time.process_time()
        try:
            model.train(**args)
        finally:
            self.clock.end()  # finished, stopped or failed: what follows (final uploads) is overhead
            if self.watch is not None:
                self.watch.stop()
        log.info("training call: started at unix %.3f, took %.3f s (CPU %.3f s), peak RSS %.1f MiB",
                 started_wall, time.monotonic() - started, time.process_time() - cpu, peak_rss_mib())
        trainer = model.trainer
        if not self.final_metrics:
            self.final_metrics = pick_metrics(getattr(trainer, "metrics", None))
        best = Path(trainer.best)
        return Trained(self.epochs_done, Path(trainer.last), best if best.exists() else None, self.final_metrics)

    def _common_args(self) -> dict[str, Any]:
        """Ultralytics' arguments for a fresh run and a resumed one alike."""
        return {
            "data": str(self.data_yaml),
            "device": self.device.arg,
            "workers": min(GPU_WORKERS, os.cpu_count() or 1) if self.device.is_gpu else 0,
            "plots": False,  # plotting needs fonts and time, and nobody looks at the PNGs
            # On a resume too: Ultralytics lets a resume change the batch (its check_resume), so a retry after
            # running out of memory continues from last.pt with the smaller one (orchestrator/domain/oom.py).
            "batch": self.batch or self.spec.training_params.batch_size,
            "imgsz": self.spec.model_params.input_size,
        }

    def _fresh_args(self) -> dict[str, Any]:
        """Ultralytics' arguments for a fresh run (bench/bare_train.py passes the same, value for value)."""
        return {
            **self._common_args(),
            "epochs": self.total_epochs,
            "lr0": self.spec.training_params.learning_rate,
            # An explicit optimizer: with "auto" Ultralytics ignores lr0 and picks its own.
            "optimizer": "AdamW",
            "project": str(self.run_dir),
            "name": "train",
            "exist_ok": True,
            "seed": SEED,
            "verbose": True,
        }

    def _add_callbacks(self, model: Any) -> None:
        for event, callback in (
            ("on_pretrain_routine_end", self._on_pretrain_end),
            ("on_train_start", self._on_train_start),
            ("on_train_epoch_start", self._on_epoch_start),
            ("on_train_batch_end", self._on_batch_end),
            ("on_model_save", self._on_model_save),
            ("on_fit_epoch_end", self._on_fit_epoch_end),
        ):
            model.add_callback(event, callback)
        if self.watch is not None:  # every step between batches moves the loop too (worker/watchdog.py)
            for event, callback in loop_steps(self.watch):
                model.add_callback(event, callback)
        from worker import inject  # test-only faults; none unless LAXAI_TEST_INJECT is set

        for event, callback in inject.callbacks(self.attempt):
            model.add_callback(event, callback)

    # -- callbacks (training thread) -------------------------------------------

    def _on_pretrain_end(self, trainer: Any) -> None:
        self.stop.check()  # a stop that came during start-up (dataset scan, model build)

    def _on_train_start(self, trainer: Any) -> None:
        self._train_started = time.monotonic()
        self.clock.start()  # the loop begins: data, model build and the first validation set-up came before
        self.start_epoch = self.epochs_done = int(trainer.start_epoch)
        if self.watch is not None:
            self.watch.start()

    def _on_epoch_start(self, trainer: Any) -> None:
        self._batch, self._batches = 0, len(trainer.train_loader)
        self.stop.check()

    def _on_batch_end(self, trainer: Any) -> None:
        self._batch += 1
        if self.watch is not None:
            self.watch.beat()
        bad = non_finite_loss(trainer)
        if bad is not None:  # stop within this batch: every later one would be wasted (worker/watchdog.py)
            params = self.spec.training_params
            raise Diverged(bad, self.epochs_done + 1, self._batch, params.learning_rate,
                           self.batch or params.batch_size)
        if not self._first_batch_logged:
            self._first_batch_logged = True
            log.info("first training batch done at unix %.3f", time.time())
        self.stop.check()  # event lookups and a clock read: cheap enough for every batch
        now = time.monotonic()
        if now < self._next_offer:  # the reporter would only coalesce it: skip the loss sync
            return
        self._next_offer = now + self.reporter.interval
        try:
            self.reporter.offer(self.progress(loss=_total_loss(trainer)))
        except Exception:  # noqa: BLE001 - reporting never breaks training
            log.warning("could not report batch progress", exc_info=True)

    def _on_model_save(self, trainer: Any) -> None:
        self._saved_epoch = trainer.epoch
        self.clock.checkpoint()
        done = trainer.epoch + 1
        # Staged copies are local and quick; uploads happen on the uploader's thread.
        self.uploader.submit(LAST, Path(trainer.last), done)
        if trainer.best_fitness == trainer.fitness and Path(trainer.best).exists():  # best.pt was rewritten
            # ... from the same bytes as last.pt (Ultralytics' save_model): staged by a hard link, not a copy.
            self.uploader.submit(BEST, Path(trainer.best), done, same_as=LAST)

    def _on_fit_epoch_end(self, trainer: Any) -> None:
        if trainer.epoch != self._saved_epoch:
            # Ultralytics calls this once more after the loop, for its final validation of best.pt
            # (with epoch bumped by one): those are the run's final metrics.
            self.final_metrics = pick_metrics(trainer.metrics)
            return
        self._saved_epoch = None
        self.epochs_done = trainer.epoch + 1
        metrics = pick_metrics(trainer.metrics)
        self.final_metrics = metrics  # until the final validation replaces them
        try:
            loss = _total_loss(trainer)
            values = {**trainer.label_loss_items(trainer.tloss, prefix="train"), **trainer.metrics,
                      **getattr(trainer, "lr", {})}
            row = row_from(self.epochs_done, self.reporter.attempt, values)  # the curves' row, on the same write
            self.reporter.offer(self.progress(loss=loss, metrics=metrics, epoch_end=True), metrics, urgent=True,
                                row=row)
            self.wandb.log_epoch(self.epochs_done, {k: float(v) for k, v in values.items()})
        except Exception:  # noqa: BLE001 - reporting never breaks training
            log.warning("could not report epoch %d", self.epochs_done, exc_info=True)
        if self.epochs_done < self.total_epochs:  # after the last epoch, finishing beats stopping
            self.stop.check(checkpoint=True)  # last.pt of this epoch is saved: a cost stop may end here

    # -- progress --------------------------------------------------------------

    def progress(self, loss: float | None = None, metrics: dict[str, float] | None = None,
                 epoch_end: bool = False, message: str | None = None) -> Progress:
        """Where training is now, as the job's Progress."""
        total = self.total_epochs
        batches = self._batches or None
        fraction = 0.0 if epoch_end or not batches else min(1.0, self._batch / batches)
        position = min(total, self.epochs_done + fraction)
        if message is None:
            if epoch_end:
                shown = f", mAP50 {metrics['mAP50']:.3f}" if metrics and "mAP50" in metrics else ""
                message = f"Epoch {self.epochs_done}/{total} done{shown}"
            else:
                message = f"Epoch {self.epochs_done + 1}/{total}, batch {self._batch}/{batches}"
        return Progress(
            epoch=self.epochs_done,
            total_epochs=total,
            progress_percent=round(100.0 * position / total, 2) if total else 0.0,
            message=message,
            batch=None if epoch_end else self._batch,
            batches=batches,
            loss=loss,
            eta_seconds=self._eta(position),
        )

    def _eta(self, position: float) -> float | None:
        """Remaining seconds, from this attempt's pace so far."""
        if self._train_started is None:
            return None
        done = position - self.start_epoch
        if done <= 0:
            return None
        pace = (time.monotonic() - self._train_started) / done
        return round(pace * max(0.0, self.total_epochs - position), 1)

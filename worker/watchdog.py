"""Two watchdogs over a training run: a diverged loss, and a loop that stopped moving.

- **Diverged**: after every training batch the session asks ``non_finite_loss``; a NaN or infinite
  loss raises ``Diverged`` from the callback, so the run stops within that batch and the job fails
  with reason ``diverged``, saying where and what to change (no retry: the same spec would diverge
  again). Ultralytics' own NaN recovery only acts at epoch ends, after a whole epoch of wasted work,
  and never in a run's first epoch.
- **Stalled**: ``StallWatch`` is a thread that the training loop touches (``beat``) at every batch and
  at every step between batches (epoch start and end, validation batches, checkpoint save; it rests
  while Ultralytics sets up its final validation, ``loop_steps``). When
  nothing moved for STALL_SECONDS while the process is otherwise alive (its heartbeat keeps the lease),
  e.g. a hung data loader or device call, it calls its ``on_stall``: the runner ends the attempt as
  ``stalled`` from this thread and exits the process, and the job resumes from its last checkpoint in
  a new execution (it counts against MAX_RECOVERIES). A process frozen whole stops heartbeating
  too; the lease expiry handles that one.

Both live in the worker, which alone knows when its last batch finished; they add no writes to the
job document (the stall's closing write replaces the attempt's own).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Diverged(Exception):
    """The training loss became NaN or infinite; raised from the batch callback that saw it."""

    def __init__(self, loss: float, epoch: int, batch: int, learning_rate: float, batch_size: int):
        self.loss, self.epoch, self.batch = loss, epoch, batch
        super().__init__(f"the training loss became {loss} at epoch {epoch}, batch {batch}; "
                         f"{divergence_hint(learning_rate, batch_size)}")


def divergence_hint(learning_rate: float, batch_size: int) -> str:
    """What to change in the spec for a run that diverged, with numbers from the spec it ran."""
    hint = f"lower the learning rate (learning_rate {learning_rate:g}, e.g. {learning_rate / 2:g})"
    if batch_size > 1:
        hint += f" or use a smaller batch (batch_size {batch_size}, e.g. {max(1, batch_size // 2)})"
    return hint + ", then retry"


def non_finite_loss(trainer: Any) -> float | None:
    """The batch's loss when it is NaN or infinite, else None. Reads ``trainer.loss`` (this batch's
    total), else the running means in ``trainer.tloss``; Ultralytics' progress bar syncs those every
    batch already, so this adds no device sync of note."""
    loss = getattr(trainer, "loss", None)
    values: list[Any] = [loss] if loss is not None else []
    if not values:
        tloss = getattr(trainer, "tloss", None)
        if tloss is not None:
            values = list(tloss.values()) if isinstance(tloss, dict) else list(tloss.reshape(-1))
    for value in values:
        number = float(value.detach().sum()) if hasattr(value, "detach") else float(value)
        if not math.isfinite(number):
            return number
    return None


class StallWatch:
    """Calls ``on_stall(idle_seconds)`` once when no ``beat`` came for ``limit`` seconds while watching."""

    def __init__(self, limit: float, on_stall: Callable[[float], None], poll: float | None = None):
        self.limit = limit
        self.on_stall = on_stall
        self.poll = poll if poll is not None else max(0.05, min(5.0, limit / 6))
        self.fired = False
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """The loop moved (training thread, every batch: one clock read and one store)."""
        self._last = time.monotonic()

    def idle(self) -> float:
        return time.monotonic() - self._last

    def start(self) -> None:
        """Start watching (again after ``stop``; a no-op once it fired)."""
        self.beat()
        if self.fired or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; a stall being handled on the watch's thread goes on."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and not self.fired:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            idle = self.idle()
            if idle < self.limit:
                continue
            self.fired = True
            log.error("no training batch finished for %.0f s (STALL_SECONDS=%g): the run is stalled", idle,
                      self.limit)
            try:
                self.on_stall(idle)
            except Exception:  # noqa: BLE001 - a watchdog thread must not die silently
                log.exception("could not end the stalled attempt; the lease expiry will")
            return


# Ultralytics callbacks between batches, each a step of the loop (validation included).
BETWEEN_BATCHES = ("on_train_epoch_start", "on_train_epoch_end", "on_val_batch_end", "on_val_end", "on_model_save")


def loop_steps(watch: StallWatch) -> list[tuple[str, Callable[[Any], None]]]:
    """The Ultralytics callbacks by which ``watch`` learns that the loop moved (training batches aside).

    After the last epoch (``trainer.stop`` at its ``on_fit_epoch_end``) Ultralytics strips both
    checkpoints and loads best.pt for its final validation, with no callback until that validation
    starts: seconds on a busy machine, more for a large model. The watch rests through that step and
    ``on_val_start`` arms it again, so the final validation's batches are watched like any other.
    """

    def epoch_end(trainer: Any) -> None:
        if trainer.stop:  # the loop ends after this epoch (its last, or stopped early)
            watch.stop()
        else:
            watch.beat()

    steps: list[tuple[str, Callable[[Any], None]]] = [(event, lambda trainer: watch.beat())
                                                      for event in BETWEEN_BATCHES]
    steps.append(("on_val_start", lambda trainer: watch.start()))  # a beat, or arms the watch again
    steps.append(("on_fit_epoch_end", epoch_end))
    return steps


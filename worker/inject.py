"""Test-only faults, injected into a real training run through Ultralytics callbacks.

``LAXAI_TEST_INJECT`` (unset: off, nothing is added) is read here and nowhere else. It holds
comma-separated ``name:N`` items; each fault happens inside a real training batch, so the worker's
real watchdogs and closing paths see it:

- ``nan_loss_at_batch:N``: before the attempt's N-th training batch one weight of the model becomes
  NaN, so that batch's real forward pass yields a NaN loss (the divergence watchdog must stop it).
- ``hang_at_batch:N``: after the N-th training batch of the job's *first* attempt, the training
  thread sleeps for an hour: the process still heartbeats but finishes no batch (the stall watchdog
  must end the attempt); later attempts run normally, so the resumed job can finish.
- ``oom_when_batch_over:N``: before every training batch of a run whose batch size is over N, raise
  ``torch.cuda.OutOfMemoryError`` (the class exists in CPU builds of torch too), as CUDA would when the
  batch does not fit; with ``oom_from_epoch:E`` only from the job's epoch E on (default 1), so a
  checkpoint exists first. A run at batch N or less trains normally (the retry with half the batch,
  orchestrator/domain/oom.py, must get there).

Batches are counted over the attempt (epoch 2's first batch of a 2-batch epoch is batch 3). Items
with other names are left to the parts that read them (``items``); a malformed item fails the worker
at start, naming the variable, so a typo never makes a test pass for the wrong reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

VARIABLE = "LAXAI_TEST_INJECT"
HANG_SECONDS = 3600.0

Callback = tuple[str, Callable[[Any], None]]


def items(environ: dict[str, str] | None = None) -> dict[str, int]:
    """The faults asked for: name -> N (empty when the variable is unset or blank)."""
    raw = (os.environ if environ is None else environ).get(VARIABLE, "").strip()
    faults: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, value = item.partition(":")
        if not name or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{VARIABLE}={raw!r}: each item is name:N with N >= 1, e.g. nan_loss_at_batch:3")
        faults[name.strip()] = int(value)
    return faults


class _Counter:
    """Training batches seen in this attempt, counted by the callback that runs first in each batch."""

    def __init__(self) -> None:
        self.started = 0


def callbacks(attempt: int, environ: dict[str, str] | None = None) -> list[Callback]:
    """The Ultralytics callbacks that make the faults asked for happen (none when off)."""
    faults = items(environ)
    if not faults:
        return []
    asked = ",".join(f"{name}:{n}" for name, n in faults.items())
    log.warning("%s=%s: test faults injected into this run", VARIABLE, asked)
    counter = _Counter()
    added: list[Callback] = [("on_train_batch_start", lambda trainer: _count(counter))]
    if "nan_loss_at_batch" in faults:
        added.append(("on_train_batch_start", _poison_at(counter, faults["nan_loss_at_batch"])))
    if "oom_when_batch_over" in faults:
        added.append(("on_train_batch_start", _oom_over(faults["oom_when_batch_over"], faults.get("oom_from_epoch", 1))))
    if "hang_at_batch" in faults and attempt == 1:
        added.append(("on_train_batch_end", _hang_at(counter, faults["hang_at_batch"])))
    return added


def _count(counter: _Counter) -> None:
    counter.started += 1


def _poison_at(counter: _Counter, batch: int) -> Callable[[Any], None]:
    def poison(trainer: Any) -> None:
        if counter.started != batch:
            return
        import torch

        log.warning("%s: the model's first weight becomes NaN before batch %d", VARIABLE, batch)
        with torch.no_grad():
            next(trainer.model.parameters()).fill_(float("nan"))

    return poison


def _hang_at(counter: _Counter, batch: int) -> Callable[[Any], None]:
    def hang(trainer: Any) -> None:
        if counter.started != batch:
            return
        log.warning("%s: the training thread hangs after batch %d", VARIABLE, batch)
        time.sleep(HANG_SECONDS)

    return hang


def _oom_over(limit: int, from_epoch: int) -> Callable[[Any], None]:
    def out_of_memory(trainer: Any) -> None:
        if trainer.batch_size <= limit or trainer.epoch + 1 < from_epoch:
            return
        import torch

        log.warning("%s: CUDA out of memory at batch size %d (over %d), epoch %d", VARIABLE, trainer.batch_size,
                    limit, trainer.epoch + 1)
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB at batch size "
                                          f"{trainer.batch_size} (injected by {VARIABLE})")

    return out_of_memory

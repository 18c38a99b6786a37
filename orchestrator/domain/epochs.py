"""A job's per-epoch metric history: the rows its training curves are drawn from.

Each finished epoch of any execution (attempt) of a job leaves one compact row:
the train and validation losses and mAP, with the attempt that ran it. The rows
ride on the worker's epoch-end progress write (worker/reporter.py), so keeping
them costs no write of its own. A resumed epoch (an execution that redid an
epoch its predecessor finished but did not checkpoint) replaces its row; the
list is bounded by the spec's largest epoch count. Pure domain code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # job.py holds the rows (Job.epochs): it imports this module, not the reverse
    from orchestrator.domain.job import Job

MAX_ROWS = 1000  # training_params.epochs allows at most 1000: one row per epoch always fits
DIGITS = 5  # values are rounded: the curves need no more, and the job document stays small

# Our row fields -> Ultralytics' keys (trainer.label_loss_items(tloss, "train") and trainer.metrics).
SOURCE_KEYS = {
    "box": "train/box_loss",
    "cls": "train/cls_loss",
    "dfl": "train/dfl_loss",
    "val_box": "val/box_loss",
    "val_cls": "val/cls_loss",
    "val_dfl": "val/dfl_loss",
    "map50": "metrics/mAP50(B)",
    "map50_95": "metrics/mAP50-95(B)",
}
LOSSES = ("box", "cls", "dfl")


class EpochRow(BaseModel):
    """One finished epoch: ``epoch`` counts from 1; a value is None when it was missing or not finite."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # as job.Record: newer rows still load

    epoch: int
    attempt: int
    box: float | None = None
    cls: float | None = None
    dfl: float | None = None
    val_box: float | None = None
    val_cls: float | None = None
    val_dfl: float | None = None
    map50: float | None = None
    map50_95: float | None = None


def finite(value: object) -> float | None:
    """``value`` as a rounded float, or None when it is missing, not a number, NaN or infinite
    (a diverged run's NaN would not survive JSON, and has no place on a curve)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return round(number, DIGITS) if math.isfinite(number) else None


def row_from(epoch: int, attempt: int, values: Mapping[str, object]) -> EpochRow:
    """The row of ``epoch`` from Ultralytics' named values (``SOURCE_KEYS``); absent ones stay None."""
    return EpochRow(epoch=epoch, attempt=attempt,
                    **{ours: finite(values.get(theirs)) for ours, theirs in SOURCE_KEYS.items()})


def merged(rows: Iterable[EpochRow], new: Iterable[EpochRow]) -> list[EpochRow]:
    """``rows`` with ``new`` added: a new row replaces the one of its epoch; sorted by epoch, the
    newest ``MAX_ROWS`` kept."""
    by_epoch = {row.epoch: row for row in rows}
    for row in new:
        by_epoch[row.epoch] = row
    return [by_epoch[epoch] for epoch in sorted(by_epoch)][-MAX_ROWS:]


def with_epochs(job: Job, new: Iterable[EpochRow]) -> Job:
    """``job`` with ``new`` rows merged into its history (unchanged when there are none)."""
    new = list(new)
    if not new:
        return job
    return job.model_copy(update={"epochs": merged(job.epochs, new)})


def attempt_starts(job: Job) -> dict[int, str]:
    """Where the curves mark a new execution: {attempt number: "continued" | "resumed"} for each
    attempt after the first that has rows. "continued" when every execution in between ended as a
    planned continuation (or never launched); "resumed" after an interruption or a lost worker."""
    seen = sorted({row.attempt for row in job.epochs})
    ends = {a.number: (a.end_reason.value if a.end_reason else None) for a in job.attempts}
    marks = {}
    for previous, number in zip(seen, seen[1:]):
        between = {ends.get(n) for n in range(previous, number)} - {"launch_failed"}
        marks[number] = "continued" if between == {"continuation"} else "resumed"
    return marks

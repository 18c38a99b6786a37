"""Where the money went: each attempt's billed seconds split into training, overhead and lost.

Pure domain code. An attempt is billed for its whole life (``Attempt.billed_seconds``: from the
worker process's start to the attempt's end), and that time is split three ways:

- **training**: in the training loop (from the first batch of the attempt to the end of
  ``YOLO.train``, per-epoch validation included) and kept, because it was checkpointed or the
  attempt ended for good;
- **lost**: training redone by the next attempt, because the attempt ended in a way that resumes
  (interrupted, planned continuation, lost worker) after its last checkpoint;
- **overhead**: the rest: process start, imports, device and checkpoint fetch, the dataset, the
  model build, the final checkpoint and registry uploads, and for a lost worker the time until
  the dispatcher noticed it was gone is lost (below).

The rule, per attempt (all clamped so that training + overhead + lost = billed):

1. ``trained`` = ``training_seconds`` when the worker closed the attempt itself; else (a lost
   worker, a hard-stopped one, or a running attempt) the time from ``training_started_at`` (stamped
   by its progress writes) to its end (or now); 0 when the loop never started, as far as is known.
2. ``lost`` = 0 unless the attempt's end reason resumes. Then it is ``lost_seconds`` when the
   worker recorded it (training since its last checkpoint), else, for a lost worker, everything
   from its last known checkpoint (``checkpoint_at``, else ``training_started_at``) to the end the
   dispatcher recorded: no figure from the worker comes after that checkpoint for sure. Never more
   than ``trained``.
3. ``training`` = ``trained`` - ``lost``; ``overhead`` = ``billed`` - ``trained``.

Each part is priced at the rates the job's cost uses, so the three prices add up to ``usd``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.domain.cost import Rates, format_usd
from orchestrator.domain.durations import duration
from orchestrator.domain.job import Attempt, CostSummary, utcnow

SHOW_SHARE = 0.05  # the completion reply shows the split when overhead or loss passes this share
OVERHEAD_WORDS = "start, imports, data, uploads"
LOST_WORDS = "redone after an interruption"


@dataclass(frozen=True)
class Split:
    """Seconds of one attempt, or of several summed."""

    training: float = 0.0
    overhead: float = 0.0
    lost: float = 0.0

    def __add__(self, other: Split) -> Split:
        return Split(self.training + other.training, self.overhead + other.overhead, self.lost + other.lost)


def _clamp(value: float, top: float) -> float:
    return min(max(0.0, value), max(0.0, top))


def _since(start: datetime | None, end: datetime) -> float:
    return 0.0 if start is None else (end - start).total_seconds()


def split_attempt(attempt: Attempt, now: datetime | None = None) -> Split:
    """The module's rule for one attempt (a running one counts up to ``now``)."""
    billed = attempt.billed_seconds if attempt.ended_at is not None or now is None else \
        max(0.0, _since(attempt.started_at, now))
    if attempt.started_at is None or billed <= 0:
        return Split()
    end = attempt.ended_at or now or utcnow()
    if attempt.training_seconds is not None:
        trained = attempt.training_seconds
    else:
        trained = _since(attempt.training_started_at, end)
    trained = _clamp(trained, billed)
    lost = 0.0
    if attempt.end_reason is not None and attempt.end_reason.resumes:
        if attempt.lost_seconds is not None:
            lost = attempt.lost_seconds
        elif attempt.training_seconds is None:  # a lost worker: after its last known checkpoint
            lost = _since(attempt.checkpoint_at or attempt.training_started_at, end)
        lost = _clamp(lost, trained)
    return Split(training=trained - lost, overhead=billed - trained, lost=lost)


def split_attempts(attempts: list[Attempt], now: datetime | None = None) -> Split:
    total = Split()
    for attempt in attempts:
        total = total + split_attempt(attempt, now)
    return total


def with_split(summary: CostSummary, attempts: list[Attempt], rates: Rates) -> CostSummary:
    """``summary`` with its split filled in; the seconds add up to ``billed_seconds`` (rounded to ms)."""
    split = split_attempts(attempts)
    training, lost = round(split.training, 3), round(split.lost, 3)
    overhead = round(max(0.0, summary.billed_seconds - training - lost), 3)
    if training + lost > summary.billed_seconds:  # rounding of a tiny overhead: take it from training
        training = round(summary.billed_seconds - lost, 3)
    return summary.model_copy(update={
        "training_s": training, "overhead_s": overhead, "lost_s": lost,
        "training_usd": rates.cost(training), "overhead_usd": rates.cost(overhead), "lost_usd": rates.cost(lost),
    })


def worth_showing(cost: CostSummary) -> bool:
    """Whether overhead or loss is more than SHOW_SHARE of the billed time."""
    billed = cost.billed_seconds
    return billed > 0 and max(cost.overhead_s, cost.lost_s) > SHOW_SHARE * billed


def split_text(cost: CostSummary) -> str:
    """``training $0.48 (38m 10s) · overhead $0.05 (start, imports, data, uploads) · lost $0.02 (redone
    after an interruption)``: plain text, lost only when there was some."""
    parts = [f"training {format_usd(cost.training_usd)} ({duration(cost.training_s)})",
             f"overhead {format_usd(cost.overhead_usd)} ({duration(cost.overhead_s)}: {OVERHEAD_WORDS})"]
    if cost.lost_s > 0:
        parts.append(f"lost {format_usd(cost.lost_usd)} ({duration(cost.lost_s)} {LOST_WORDS})")
    return " \u00b7 ".join(parts)

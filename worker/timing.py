"""When this attempt's training loop ran: the worker's half of the cost split.

The training callbacks (training thread) mark the loop's start (before the first batch), each
checkpoint (epoch end) and the loop's end (``YOLO.train`` returned or raised, before the final
uploads). The progress reporter stamps the start and the newest checkpoint on the attempt with
its writes (no extra write: ``transitions.mark_training``), so the dispatcher can still split
the time of a worker it later finds lost; the closing write records ``training_seconds`` and
the training lost since the last checkpoint. The rule that turns these into training,
overhead and lost is in orchestrator/domain/cost_split.py.

Plain attribute writes from one thread, read by others: each is one assignment, and a reader
seeing the previous value is only one progress write behind.
"""

from __future__ import annotations

import time
from datetime import datetime

from orchestrator.domain.job import utcnow


class TrainingClock:
    """Monotonic times for durations, wall times for the store."""

    def __init__(self) -> None:
        self._started: float | None = None
        self._ended: float | None = None
        self._checkpoint: float | None = None
        self.started_at: datetime | None = None  # wall clock, for the attempt's training_started_at
        self.checkpoint_at: datetime | None = None  # wall clock, for the attempt's checkpoint_at

    def start(self) -> None:
        """The loop begins (the first call counts: a resumed run's loop starts once per attempt)."""
        if self._started is None:
            self._started, self.started_at = time.monotonic(), utcnow()
            self._ended = None

    def checkpoint(self) -> None:
        """A checkpoint was saved (staged for upload) just now."""
        if self._started is not None:
            self._checkpoint, self.checkpoint_at = time.monotonic(), utcnow()

    def end(self) -> None:
        """The loop is over (finished, stopped or failed); idempotent."""
        if self._started is not None and self._ended is None:
            self._ended = time.monotonic()

    def seconds(self) -> float | None:
        """Time in the loop (up to now while it runs); None when it never started."""
        if self._started is None:
            return None
        return round((self._ended if self._ended is not None else time.monotonic()) - self._started, 3)

    def lost_since(self, saved_at: float | None) -> float:
        """Training since the checkpoint saved at monotonic ``saved_at`` (None: none this attempt): what
        the next attempt redoes. Only loop time counts: set-up before the loop is overhead, not loss."""
        if self._started is None:
            return 0.0
        end = self._ended if self._ended is not None else time.monotonic()
        since = self._started if saved_at is None else max(saved_at, self._started)
        return max(0.0, end - since)

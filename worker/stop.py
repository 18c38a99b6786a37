"""Why training should stop: flags set by other threads and time budgets, read cheaply per batch.

The heartbeat thread sets ``cancel`` or ``lost``, the SIGTERM handler sets
``sigterm`` (``StopFlags``, made before the job is read); the training callbacks
call ``StopCheck.check`` (the flags and the attempt's ``Budget``) after every batch
and raise ``TrainingStopped`` so Ultralytics leaves a resumable last.pt behind
(``trainer.stop = True`` would run the final evaluation and strip the optimizer
from the checkpoint, which makes it impossible to resume).

A cost stop (``BUDGET``: the job's ``max_cost_usd`` reached, by the ``CostMeter``, or a budget
run out, a flag the heartbeat raises) is asked only at a checkpoint: ``check(checkpoint=True)``
right after an epoch's last.pt was saved, so the epoch paid for is kept (the rule and its
overshoot: orchestrator/domain/cost_cap.py).
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass

from orchestrator.domain.cost_cap import cap_reached


class StopReason(str, enum.Enum):
    """Why the worker stops before training finished, most urgent first."""

    LOST = "lost"  # the attempt is no longer ours: write nothing more
    CANCEL = "cancel"  # a user asked; the job is cancelling
    TIMEOUT = "timeout"  # TRAINING_TIMEOUT used up across all attempts
    SIGTERM = "sigterm"  # the platform stops us (preemption, Cloud Run stop)
    CONTINUATION = "continuation"  # the per-execution cap is near: hand over to a new execution
    BUDGET = "budget"  # the cost cap or a budget is reached: stop at this checkpoint, the job ends cancelled


class TrainingStopped(Exception):
    """Raised from a training callback to leave Ultralytics' loop with the last checkpoint intact."""

    def __init__(self, reason: StopReason):
        super().__init__(f"training stopped: {reason.value}")
        self.reason = reason


@dataclass
class Budget:
    """Time limits of this attempt, against a monotonic clock started when the worker took the attempt."""

    started: float  # time.monotonic() when this attempt's process started (billing starts there)
    prior_seconds: float  # billed seconds of the job's earlier attempts
    training_timeout: float  # TRAINING_TIMEOUT: all attempts together
    continue_after: float | None  # TASK_TIMEOUT - TASK_TIMEOUT_MARGIN, or None when there is no cap

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started

    def exceeded(self, now: float | None = None) -> StopReason | None:
        elapsed = self.elapsed(now)
        if self.prior_seconds + elapsed >= self.training_timeout:
            return StopReason.TIMEOUT
        if self.continue_after is not None and elapsed >= self.continue_after:
            return StopReason.CONTINUATION
        return None


class StopFlags:
    """Thread-safe stop requests from other threads; reading them costs a few attribute lookups."""

    def __init__(self) -> None:
        self._events = {reason: threading.Event() for reason in (StopReason.LOST, StopReason.CANCEL,
                                                                   StopReason.SIGTERM, StopReason.BUDGET)}
        self.lost_why: str | None = None
        self.budget_why: str | None = None  # a budget stop's words (the service's budget pass)

    def set(self, reason: StopReason, why: str | None = None) -> None:
        if reason is StopReason.LOST and self.lost_why is None:
            self.lost_why = why
        if reason is StopReason.BUDGET and self.budget_why is None:
            self.budget_why = why
        self._events[reason].set()

    def is_set(self, reason: StopReason) -> bool:
        event = self._events.get(reason)
        return event is not None and event.is_set()

    @property
    def lost(self) -> bool:
        return self._events[StopReason.LOST].is_set()


@dataclass(frozen=True)
class CostMeter:
    """What the job has cost so far, priced as ``cost.usd`` is: every execution's billed seconds (the earlier
    ones' stored, this one's from its process start) × this execution's rate; and its cap."""

    cap_usd: float | None  # spec.max_cost_usd; None: no cap
    prior_seconds: float  # billed seconds of the job's earlier executions
    process_started: float  # time.monotonic() at this process's start: billing starts there
    usd_per_second: float

    def spent(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return round((self.prior_seconds + max(0.0, now - self.process_started)) * self.usd_per_second, 6)

    def reached(self, now: float | None = None) -> bool:
        return self.cap_usd is not None and cap_reached(self.spent(now), self.cap_usd)


@dataclass(frozen=True)
class StopCheck:
    """The training thread's question "stop now?": the flags other threads raise, and the attempt's budget."""

    flags: StopFlags
    budget: Budget
    meter: CostMeter | None = None  # the cost cap, asked at checkpoints only

    def reason(self, checkpoint: bool = False) -> StopReason | None:
        """The most urgent reason to stop now, or None to carry on; at a ``checkpoint`` a cost stop too."""
        # Priority follows StopReason's order: lost, cancel, timeout, sigterm, continuation.
        for reason in (StopReason.LOST, StopReason.CANCEL):
            if self.flags.is_set(reason):
                return reason
        over = self.budget.exceeded()
        if over is StopReason.TIMEOUT:
            return over
        if self.flags.is_set(StopReason.SIGTERM):
            return StopReason.SIGTERM
        # A cost stop beats a continuation: the job ends here rather than start another execution.
        if checkpoint and (self.flags.is_set(StopReason.BUDGET) or (self.meter is not None and self.meter.reached())):
            return StopReason.BUDGET
        return over

    def check(self, checkpoint: bool = False) -> None:
        """Raise TrainingStopped when training should stop (``checkpoint``: an epoch's last.pt was just saved)."""
        reason = self.reason(checkpoint)
        if reason is not None:
            raise TrainingStopped(reason)

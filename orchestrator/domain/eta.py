"""A running job's live ETA: when it should finish, from the pace its worker observed.

Pure domain code. The worker reports ``progress.eta_seconds`` with every progress write
(worker/training.py ``_eta``: this execution's seconds per epoch so far, validation included,
times the epochs left); the store stamps the write's time (``progress.updated_at``). So the
finish time is fixed by the record, and only "how long from now" moves with the clock: the card
renders the record's figures (the same record renders the same card), ``/status`` the time left.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel, ConfigDict

from orchestrator.domain.job import Job
from orchestrator.domain.status import JobStatus


class Eta(BaseModel):
    """Seconds left and the time it should finish (UTC)."""

    model_config = ConfigDict(frozen=True)

    seconds: float
    finishes_at: datetime


def eta_of(job: Job, now: datetime | None = None) -> Eta | None:
    """The ETA of a running job whose worker reported a pace; None otherwise. ``seconds`` counts
    from ``now`` when given (never below 0), else from the progress write that carried it."""
    progress = job.progress
    if job.status is not JobStatus.RUNNING or progress.eta_seconds is None or progress.updated_at is None:
        return None
    finishes = progress.updated_at + timedelta(seconds=max(0.0, progress.eta_seconds))
    left = progress.eta_seconds if now is None else (finishes - now).total_seconds()
    return Eta(seconds=round(max(0.0, left), 1), finishes_at=finishes)


def minutes_text(seconds: float) -> str:
    """Coarse, so a card changes once a minute at most: ``under 1 min``, ``12 min``, ``2 h 05 min``."""
    minutes = math.ceil(max(0.0, seconds) / 60)
    if minutes < 1:
        return "under 1 min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def eta_line(eta: Eta) -> str:
    """``ETA 12 min · ≈ 14:32 UTC`` (the finish time to the minute)."""
    return f"ETA {minutes_text(eta.seconds)} \u00b7 \u2248 {eta.finishes_at.astimezone(timezone.utc):%H:%M} UTC"

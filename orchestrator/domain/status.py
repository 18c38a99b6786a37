"""Job statuses and the table of allowed transitions between them.

Pure domain code: no storage, no I/O. Stores apply transitions as compare-and-set
operations (see ``orchestrator.domain.transitions``); this module only says which
moves are legal.
"""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    """Lifecycle of one training job (one job may run as several executions)."""

    # Accepted and waiting for a free slot; also where an interrupted job returns
    # to wait for its next execution (it then resumes from its last checkpoint).
    QUEUED = "queued"
    # Held before it ever runs: its estimate would take spend over a budget
    # (orchestrator/domain/budget.py). An admin approves it (-> queued) or rejects it
    # (-> cancelled); its submitter may cancel it. The dispatcher only takes queued jobs.
    AWAITING_APPROVAL = "awaiting_approval"
    # Claimed by the dispatcher for one execution; the worker holds a lease on it.
    RUNNING = "running"
    # Someone asked to cancel a running job; the worker stops within one batch.
    CANCELLING = "cancelling"
    # Training finished; metrics, checkpoints and the registry entry are stored.
    COMPLETED = "completed"
    # Gave up: a training error, a timeout, or too many lost executions.
    FAILED = "failed"
    # Stopped at a user's request; the last checkpoint is kept.
    CANCELLED = "cancelled"

    def is_terminal(self) -> bool:
        """True when nothing more will ever happen to the job."""
        return self in TERMINAL_STATUSES

    def is_active(self) -> bool:
        """True while an execution holds (or is about to hold) a worker slot."""
        return self in (JobStatus.RUNNING, JobStatus.CANCELLING)


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
# The statuses a new job may be stored in: queued, or held for approval when over a budget.
INITIAL_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.AWAITING_APPROVAL})

# from -> the statuses it may move to. Anything not listed is refused.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.AWAITING_APPROVAL: frozenset(
        {
            JobStatus.QUEUED,  # approved by an admin
            JobStatus.CANCELLED,  # rejected by an admin, or cancelled by its submitter
        }
    ),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.QUEUED,  # interrupted, lease expired or continuation: run again
            JobStatus.CANCELLING,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
        }
    ),
    JobStatus.CANCELLING: frozenset(
        {
            JobStatus.CANCELLED,
            JobStatus.COMPLETED,  # the last batch finished before the flag was seen
            JobStatus.FAILED,
        }
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """Whether ``current -> target`` is a legal move."""
    return target in ALLOWED_TRANSITIONS[current]

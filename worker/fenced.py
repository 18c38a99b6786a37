"""The worker's own transitions of its job, fenced by the attempt number, and its exit codes.

A transition of an attempt that is no longer the job's live one is refused (the domain's
transition returns None and nothing is written): ``NotOurs``, and the worker stops without
writing anything more. Store errors are retried a few times, briefly enough to fit in
SIGTERM's grace period.

Exit codes: 0 the worker wrote the job's final or requeued state itself; 3 the attempt was
not (or no longer) ours; 1 the store could not be written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from orchestrator.domain.job import Job
from orchestrator.stores.base import StoreError
from worker.gate import GatedStore

log = logging.getLogger(__name__)

EXIT_OK, EXIT_STORE_ERROR, EXIT_NOT_OURS = 0, 1, 3
WRITE_RETRY_DELAYS = (0.0, 0.5, 1.0, 2.0)  # store errors on an important write; short enough for SIGTERM's grace


class NotOurs(Exception):
    """A transition was refused: another execution owns the job now."""


def write(store: GatedStore, task_id: str, fn: Callable[[Job], Job | None], kind: str) -> Job:
    """Apply a transition, retrying store errors; NotOurs when refused, StoreError when the store stays down."""
    error: StoreError | None = None
    for delay in WRITE_RETRY_DELAYS:
        time.sleep(delay)
        try:
            job = store.update(task_id, fn, kind=kind)
        except StoreError as exc:
            log.warning("store write %s failed: %s", kind, exc)
            error = exc
            continue
        if job is None:
            raise NotOurs(kind)
        return job
    assert error is not None
    raise error

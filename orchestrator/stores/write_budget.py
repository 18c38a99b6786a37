"""The write budget: how soon one job document may be written again, for every writer.

Firestore sustains about one write per second per document, so any two writes of
one job commit at least ``gap`` seconds apart (``settings.write_gap``:
STORE_WRITE_GAP, unset 1 s on the gcp backend and 0, no gap, on local SQLite).

Who does what:

- The stores enforce it (the guarantee, whichever process writes): ``update``
  reads the previous write's commit time inside its transaction (Firestore's
  ``update_time``, SQLite's ``job_writes``) and, through ``WriteBudget.check``,
  backs out with ``TooSoon`` when it is less than a gap ago; ``keep_gap`` waits
  outside any transaction or lock and tries again, applying the mutation to what
  it reads then. A writer that finds the very write it already waited for goes
  ahead, so a clock behind the server's cannot keep it waiting more than a gap.
- Callers ask it, so that they seldom wait inside the store:
  the dispatcher leaves a job too young to claim (``claim_wait``) for a later pass
  and records a launch one gap after its claim (``wait_after``); the push
  handler waits out such a deferral once and passes again; the worker's gate
  (worker/gate.py) spaces its own writes by the gap, keeps them clear of other
  writers' stamps it reads (``counted_commit``), and lets the dispatcher's launch
  record land before the worker's first write (``GatedStore.await_launch_record``).

``STAMP_SLACK``: a job's ``updated_at`` is stamped inside its transition, a little
before the write commits, so a writer planning from ``updated_at`` counts that
write this much later. Other writers' stamps are clamped to now (and waits capped
at one gap), so a clock ahead of ours delays a write by one gap at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

STAMP_SLACK = 0.25  # seconds from a job's updated_at stamp to its write's commit, at most

T = TypeVar("T")


class TooSoon(Exception):
    """Raised inside a store's write transaction to back out of it: the job was written less than
    a gap ago; retry after ``wait`` seconds."""

    def __init__(self, wait: float, last_write: Any):
        super().__init__(f"written {wait:.3f} s too soon")
        self.wait = wait
        self.last_write = last_write  # the previous write's stamp, as the store knows it


@dataclass(frozen=True)
class WriteBudget:
    """The rule for one store: at least ``gap`` seconds between two writes of a job (0: none)."""

    gap: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "gap", max(0.0, self.gap))

    @property
    def on(self) -> bool:
        return self.gap > 0

    @property
    def longest_deferral(self) -> float:
        """The longest ``claim_wait`` can be: a job too young to claim may be claimed within this."""
        return self.gap + STAMP_SLACK if self.on else 0.0

    def wait_after(self, last_write: float, now: float) -> float:
        """Seconds a write must still wait after one that committed at ``last_write`` (0: it may go
        now); at most one gap, whatever the two clocks say."""
        since = now - last_write
        return min(self.gap - since, self.gap) if since < self.gap else 0.0

    def claim_wait(self, updated_at: datetime, now: datetime) -> float:
        """Seconds until a job last stamped ``updated_at`` may be claimed (0: now), counting its
        write STAMP_SLACK after the stamp; at most ``longest_deferral``."""
        if not self.on:
            return 0.0
        young = self.longest_deferral - (now - updated_at).total_seconds()
        return min(max(0.0, young), self.longest_deferral)

    def counted_commit(self, stamped: float, now: float) -> float:
        """When a write stamped ``stamped`` (another writer's ``updated_at``) counts as committed:
        STAMP_SLACK later, but never after ``now``."""
        return min(stamped + STAMP_SLACK, now)

    def check(self, last_write: Any, committed_at: float | None, waited_for: Any, now: float | None = None) -> None:
        """Inside a store's write transaction: raise TooSoon when the document's previous write
        (``last_write``, committed at ``committed_at``; None: no record of it) is less than a gap
        old, unless it is the write this writer already waited for (``waited_for``)."""
        if not self.on or committed_at is None or last_write == waited_for:
            return
        wait = self.wait_after(committed_at, time.time() if now is None else now)
        if wait > 0:
            raise TooSoon(wait, last_write)

    def keep_gap(self, attempt: Callable[[Any], T], sleep: Callable[[float], None] = time.sleep) -> T:
        """Run ``attempt(waited_for)`` (one write transaction that calls ``check``) until it does
        not come too soon, sleeping between tries; the caller holds no lock or transaction here."""
        waited_for: Any = None
        while True:
            try:
                return attempt(waited_for)
            except TooSoon as early:
                waited_for = early.last_write
                sleep(early.wait)

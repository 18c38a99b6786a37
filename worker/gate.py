"""One write gate per worker process: the worker's plan around the write budget (orchestrator/stores/write_budget.py).

A worker writes its job from three places (the heartbeat thread, the progress
reporter and the attempt's own transitions: worker_started, the lease
confirmation, the closing write), each throttled on its own, so without a shared
clock two of them could land within one gap (e.g. the last epoch's progress, then
the closing write). ``GatedStore`` wraps the store: every ``update`` waits until a
gap has passed since the end of the previous one (a write commits before its call
returns, so ends a gap apart means commits at least a gap apart) and the updates of
all threads run one at a time, in turn (a heartbeat is never starved by frequent
progress). Reads pass straight through, and tell the gate when someone else (the
dispatcher, a cancel request) last wrote the job (``updated_at``), so the worker's
next write keeps its distance from theirs too. With no gap (the local backend) the
gate only serializes the writes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime
from typing import Any

from orchestrator.domain.job import Job
from orchestrator.stores.base import JobStore, Mutation, StoreError
from orchestrator.stores.write_budget import WriteBudget


class _FifoLock:
    """A lock handed to its waiters in arrival order: a writer that writes often (progress at
    short epochs) cannot keep the heartbeat out, as it might with ``threading.Lock``."""

    def __init__(self):
        self._guard = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    def acquire(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Event()
            self._waiters.append(turn)
        turn.wait()  # release() handed the lock over: it stays held

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._held = False


class WriteGate:
    """A shared last-write clock (wall time, to compare with other processes' ``updated_at``)."""

    def __init__(self, gap: float, clock=time.time, sleep=time.sleep):  # noqa: ANN001 - injectable for tests
        self.budget = WriteBudget(gap)
        self.gap = self.budget.gap
        self._clock, self._sleep = clock, sleep
        self._last = float("-inf")  # when the previous write ended (or another writer's was seen)
        self._lock = _FifoLock()  # held from the wait through the write: one writer at a time, in turn

    def saw(self, written_at: datetime | None) -> None:
        """Another writer stamped the document ``written_at`` (counted as the budget says)."""
        if written_at is None or not self.budget.on:
            return
        self._last = max(self._last, self.budget.counted_commit(written_at.timestamp(), self._clock()))

    def wait_seconds(self) -> float:
        return self.budget.wait_after(self._last, self._clock())

    def __enter__(self) -> WriteGate:
        self._lock.acquire()
        wait = self.wait_seconds()
        if wait > 0:
            self._sleep(wait)
        return self

    def __exit__(self, *exc: object) -> None:
        # Counted even when the write failed or declined: a failed call may still have committed.
        self._last = max(self._last, self._clock())
        self._lock.release()


class GatedStore:
    """A JobStore whose ``update`` goes through a WriteGate; everything else is the wrapped store's."""

    def __init__(self, store: JobStore, gate: WriteGate):
        self.inner, self.gate = store, gate

    def update(self, task_id: str, fn: Mutation, kind: str = "update") -> Job | None:
        with self.gate:
            return self.inner.update(task_id, fn, kind=kind)

    def get(self, task_id: str) -> Job | None:
        job = self.inner.get(task_id)
        if job is not None:
            self.gate.saw(job.updated_at)
        return job

    def await_launch_record(self, task_id: str, number: int) -> None:
        """Before attempt ``number`` writes worker_started: let the dispatcher's launch record (written
        one gap after the claim) land first, so the start keeps its distance from it. Reads the job
        (each read tells the gate) until the record is there, the attempt is not the live one, or a
        few gaps after the claim have passed (it may never come: a crashed dispatcher, a test harness)."""
        if not self.gate.budget.on:
            return
        deadline = None
        while True:
            try:
                job = self.get(task_id)
            except StoreError:
                return  # the start write retries, and tells
            current = job.current_attempt if job is not None else None
            if current is None or current.number != number or current.execution is not None:
                return
            if deadline is None:  # wall clock, as claimed_at is; capped against a clock far ahead of ours
                deadline = min(current.claimed_at.timestamp(), time.time()) + 3 * self.gate.gap
            if time.time() >= deadline:
                return
            time.sleep(min(0.1, self.gate.gap))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

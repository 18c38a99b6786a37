"""A progress write extends the lease, so the heartbeat only beats in the gaps between them.

Each write's kind comes from a trigger in the SQLite store (tests/support/write_times.py), so the
count is of writes that really reached the job's row.
"""

from __future__ import annotations

import time

from orchestrator.domain.job import Progress, utcnow
from orchestrator.domain.transitions import worker_started
from tests.support import write_times
from worker.reporter import Heartbeat, Liveness, ProgressReporter
from worker.stop import StopFlags

LEASE = 0.8  # the heartbeat is due every LEASE / 4 = 0.2 s without other news


def _kinds(harness, task_id: str) -> list[str]:
    return [kind for kind, _ in write_times.writes(harness.settings.db_path, task_id)]


def test_progress_writes_stand_in_for_heartbeats_and_the_heartbeat_fills_the_gaps(harness):
    task_id = harness.submit()
    harness.store.update(task_id, lambda j: worker_started(j, 1, utcnow(), LEASE, "cpu", 0), kind="worker_started")
    write_times.install(harness.settings.db_path)
    flags, alive = StopFlags(), Liveness()
    beat = Heartbeat(harness.store, task_id, 1, lease_seconds=LEASE, flags=flags, cancel_poll=0.02, liveness=alive)
    reporter = ProgressReporter(harness.store, task_id, 1, interval=0.05, flags=flags, liveness=alive,
                                lease_seconds=LEASE)
    beat.start()
    reporter.start()
    first_lease = harness.store.get(task_id).lease.expires_at
    stop, batch = time.monotonic() + 2.0, 0
    while time.monotonic() < stop:  # training reports about 20 times a second for 2 s (10 beats' worth)
        batch += 1
        reporter.offer(Progress(epoch=0, total_epochs=1, batch=batch, message=f"batch {batch}"))
        time.sleep(0.05)
    while_training = _kinds(harness, task_id)
    lease_after_progress = harness.store.get(task_id).lease.expires_at
    time.sleep(1.0)  # no news: a validation pass, say — the heartbeat must take over
    reporter.stop(flush=True)
    beat.stop()
    assert not flags.lost
    assert while_training.count("progress") >= 10, while_training
    assert "heartbeat" not in while_training, while_training
    assert lease_after_progress > first_lease  # the progress writes extended the lease themselves
    quiet = _kinds(harness, task_id)[len(while_training):]
    assert quiet.count("heartbeat") >= 3, quiet  # ~5 due in 1 s at LEASE/4


def test_without_a_shared_liveness_the_reporter_leaves_the_lease_alone(harness):
    task_id = harness.submit()
    harness.store.update(task_id, lambda j: worker_started(j, 1, utcnow(), 60, "cpu", 0), kind="worker_started")
    before = harness.store.get(task_id).lease
    reporter = ProgressReporter(harness.store, task_id, 1, interval=0, flags=StopFlags())
    reporter.offer(Progress(epoch=0, total_epochs=1, message="batch 1"))
    reporter.stop(flush=True)
    after = harness.store.get(task_id)
    assert after.progress.message == "batch 1"
    assert after.lease == before

"""The worker's writes to its job keep the store's write gap (STORE_WRITE_GAP; 1 s on the gcp backend).

Each write's time comes from a trigger in the SQLite store (tests/support/write_times.py),
stamped inside the write itself, so the gaps are exact whichever process wrote.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from orchestrator.domain.job import EndReason, Progress, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import heartbeat, requeue, worker_started
from tests.support import write_times
from worker.closing import still_ours
from worker.gate import GatedStore, WriteGate
from worker.prepare import Context
from worker.reporter import Heartbeat, ProgressReporter
from worker.stop import StopFlags, StopReason

GAP = 0.25


def started_job(harness, lease_seconds: float = 60) -> str:
    task_id = harness.submit()
    harness.store.update(task_id, lambda j: worker_started(j, 1, utcnow(), lease_seconds, "cpu", 0),
                         kind="worker_started")
    return task_id


def test_heartbeat_progress_and_the_runners_writes_share_one_gate(harness):
    """The three writers of a worker, each on its own schedule, never land closer than the gap."""
    task_id = started_job(harness)
    write_times.install(harness.settings.db_path)
    store = GatedStore(harness.store, WriteGate(GAP))
    flags = StopFlags()
    beat = Heartbeat(store, task_id, 1, lease_seconds=4 * GAP, flags=flags, cancel_poll=0.05)  # beats every gap
    reporter = ProgressReporter(store, task_id, 1, interval=0, flags=flags)  # writes whenever it has news
    beat.start()
    reporter.start()
    stop = time.monotonic() + 8 * GAP
    epoch = 0
    while time.monotonic() < stop:
        epoch += 1
        reporter.offer(Progress(epoch=epoch, total_epochs=1000, message=f"epoch {epoch}"), urgent=True)
        if epoch % 5 == 0:  # the runner's own fenced writes, from this thread
            store.update(task_id, lambda j: heartbeat(j, 1, utcnow(), 60), kind="runner")
        time.sleep(0.01)
    reporter.stop(flush=True)
    beat.stop()
    assert not flags.lost
    stamped = write_times.writes(harness.settings.db_path, task_id)
    kinds = {kind for kind, _ in stamped}
    assert {"heartbeat", "progress", "runner"} <= kinds, kinds
    assert len(stamped) >= 6
    assert all(gap >= GAP for _, _, gap in write_times.gaps(stamped)), write_times.gaps(stamped)


def test_a_write_seen_in_a_read_is_kept_apart_from_the_next_write(harness):
    task_id = started_job(harness)
    write_times.install(harness.settings.db_path)
    gate = WriteGate(GAP)
    store = GatedStore(harness.store, gate)
    # Someone else (the dispatcher, a cancel) writes; the worker learns of it from a read.
    harness.store.update(task_id, lambda j: j.model_copy(update={"updated_at": utcnow()}), kind="other")
    assert store.get(task_id) is not None
    assert gate.wait_seconds() > GAP / 2
    store.update(task_id, lambda j: heartbeat(j, 1, utcnow(), 60), kind="heartbeat")
    (_, _, gap), = write_times.gaps(write_times.writes(harness.settings.db_path, task_id))
    assert gap >= GAP


def test_a_clock_ahead_of_ours_does_not_stall_the_gate():
    gate = WriteGate(GAP)
    gate.saw(utcnow() + timedelta(hours=1))
    assert gate.wait_seconds() <= GAP
    assert WriteGate(0).wait_seconds() == 0
    off = WriteGate(0)
    off.saw(utcnow())
    assert off.wait_seconds() == 0


def test_gated_writes_from_many_threads_run_one_at_a_time(harness):
    task_id = started_job(harness)
    write_times.install(harness.settings.db_path)
    store = GatedStore(harness.store, WriteGate(GAP / 2))

    def write(n: int) -> None:
        store.update(task_id, lambda j: j.model_copy(update={"metrics": {**j.metrics, f"m{n}": float(n)}}),
                     kind=f"w{n}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamped = write_times.writes(harness.settings.db_path, task_id)
    assert len(stamped) == 5
    assert all(gap >= GAP / 2 for _, _, gap in write_times.gaps(stamped))
    assert len(harness.job(task_id).metrics) == 5


# -- the lease confirmation before the final uploads -------------------------------------------


def runner_for(harness, task_id: str) -> Context:
    settings = harness.settings.model_copy(update={"LEASE_SECONDS": 60})
    return Context.open(settings, harness.backend, task_id, 1, StopFlags(), time.monotonic())


def test_a_lease_with_more_than_half_left_is_confirmed_by_a_read(harness):
    task_id = started_job(harness, lease_seconds=60)
    runner = runner_for(harness, task_id)
    cursor = harness.store.last_cursor()
    assert still_ours(runner)
    assert harness.events(task_id, cursor) == []  # no write


def test_a_lease_with_half_or_less_left_is_confirmed_by_a_fenced_write(harness):
    task_id = started_job(harness, lease_seconds=60)
    harness.store.update(task_id, lambda j: heartbeat(j, 1, utcnow() - timedelta(seconds=35), 60), kind="heartbeat")
    runner = runner_for(harness, task_id)
    cursor = harness.store.last_cursor()
    assert still_ours(runner)
    (event,) = harness.events(task_id, cursor)
    assert event.kind == "heartbeat" and event.job.lease.expires_at > utcnow() + timedelta(seconds=55)


def test_a_taken_over_attempt_is_not_confirmed(harness):
    task_id = started_job(harness, lease_seconds=60)
    rates = harness.settings.rates("cpu")
    harness.store.update(task_id, lambda j: requeue(j, 1, EndReason.LEASE_EXPIRED, utcnow(), rates, 3),
                         kind="status:queued")
    assert harness.claim(task_id) == 2
    runner = runner_for(harness, task_id)
    cursor = harness.store.last_cursor()
    assert not still_ours(runner)
    assert runner.flags.lost and runner.flags.is_set(StopReason.LOST)
    assert harness.events(task_id, cursor) == []


# -- a whole run -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_run_keeps_every_write_a_gap_apart(harness):
    """From the claim to the closing write (start, progress, heartbeats, completed): >= 1 s apart,
    with progress every 0.2 s and 2 s heartbeats asked for (the harness's settings)."""
    gap = 1.0
    write_times.install(harness.settings.db_path)
    task_id = harness.submit(epochs=3)  # created, then claimed at once (the harness is no dispatcher)
    code, worker = harness.run(task_id, 1, STORE_WRITE_GAP=str(gap))
    assert code == 0, worker.tail()
    assert harness.job(task_id).status is JobStatus.COMPLETED, worker.tail()
    stamped = write_times.writes(harness.settings.db_path, task_id)[1:]  # from the claim on
    kinds = [kind for kind, _ in stamped]
    assert kinds[:2] == ["status:running", "worker_started"] and kinds[-1] == "status:completed", kinds
    assert "progress" in kinds, kinds
    assert all(between >= gap for _, _, between in write_times.gaps(stamped)), write_times.gaps(stamped)

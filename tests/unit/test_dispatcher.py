"""Dispatcher logic on a real SQLite store, with a launcher that records what it was asked to start.

Ordering, caps, claims and recovery are decided here; the real subprocess launcher is
exercised end to end in tests/e2e.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from orchestrator.backends import open_backend
from orchestrator.config import load_settings
from orchestrator.dispatcher import Dispatcher
from orchestrator.domain.job import EndReason, Origin, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import worker_started
from orchestrator.launchers.base import Launcher, LaunchError
from orchestrator.service import JobService
from orchestrator.stores.write_budget import STAMP_SLACK
from tests.support import write_times


class RecordingLauncher(Launcher):
    """Starts nothing; records launches and stops, and can be told to fail or report exits.

    A stop ends the execution at once (exit -9, as SIGKILL), unless ``stop_failures`` says how many
    stop calls fail first, or ``stops_take_effect`` is False (accepted, but the execution runs on)."""

    def __init__(self):
        self.launched: list[tuple[str, int]] = []
        self.stopped: list[str] = []
        self.stop_calls: list[str] = []  # every call, failed ones included
        self.fail_next = False
        self.stop_failures = 0
        self.stops_take_effect = True
        self.exit_codes: dict[str, int] = {}

    def launch(self, job, attempt):
        if self.fail_next:
            self.fail_next = False
            raise LaunchError("quota exceeded")
        self.launched.append((job.task_id, attempt))
        return f"fake:{job.task_id}:{attempt}"

    def stop(self, execution):
        self.stop_calls.append(execution)
        if self.stop_failures > 0:
            self.stop_failures -= 1
            raise LaunchError(f"could not cancel {execution}: 503 unavailable")
        self.stopped.append(execution)
        if self.stops_take_effect:
            self.exit_codes[execution] = -9

    def exited(self, execution):
        return self.exit_codes.get(execution)


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def env(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path, MAX_CONCURRENT_JOBS=2, MAX_JOBS_PER_TENANT=2, MAX_RECOVERIES=1,
                             LEASE_SECONDS=30, STARTUP_GRACE_SECONDS=60, CANCEL_GRACE_SECONDS=20)
    launcher = RecordingLauncher()
    backend = open_backend(settings, launcher)
    clock = Clock()
    yield JobService(backend), Dispatcher(backend, clock=clock), launcher, clock
    backend.close()


def submit(service, tenant="t1", priority=0):
    job, _ = service.submit(JobSpec(tenant_id=tenant, priority=priority), Origin())
    return job.task_id


def status(service, task_id):
    return service.store.get(task_id).status


def test_priority_first_then_oldest_within_the_global_cap(env):
    service, dispatcher, launcher, clock = env
    low_old = submit(service, "a")
    high = submit(service, "b", priority=5)
    low_new = submit(service, "c")
    dispatcher.tick()
    assert [task for task, _ in launcher.launched] == [high, low_old]
    assert status(service, low_new) is JobStatus.QUEUED
    # A duplicate wake-up changes nothing: the claim is a compare-and-set.
    dispatcher.tick()
    assert len(launcher.launched) == 2


def test_per_tenant_cap_lets_other_tenants_through(env):
    service, dispatcher, launcher, _ = env
    service.settings.MAX_JOBS_PER_TENANT = 1
    first, second = submit(service, "busy"), submit(service, "busy")
    other = submit(service, "quiet")
    dispatcher.tick()
    assert {task for task, _ in launcher.launched} == {first, other}
    assert status(service, second) is JobStatus.QUEUED


def test_a_tenant_at_its_cap_with_a_huge_backlog_does_not_block_another_tenant(env):
    service, dispatcher, launcher, _ = env
    service.settings.MAX_JOBS_PER_TENANT = 1
    service.settings.MAX_QUEUED_PER_TENANT = 500
    flood = [submit(service, "flood", priority=9) for _ in range(202)]  # more than any one page of the queue
    victim = submit(service, "victim")
    dispatcher.tick()
    assert [task for task, _ in launcher.launched] == [flood[0], victim]
    dispatcher.tick()  # flood is at its cap: its backlog waits, whatever its priority
    assert len(launcher.launched) == 2


def test_free_slots_go_round_robin_across_tenants(env):
    service, dispatcher, launcher, clock = env
    service.settings.MAX_CONCURRENT_JOBS = 4
    service.settings.MAX_JOBS_PER_TENANT = 3
    a = [submit(service, "a", priority=9) for _ in range(3)]
    b = [submit(service, "b", priority=0) for _ in range(3)]
    c = submit(service, "c", priority=5)
    dispatcher.tick()
    # Round 1 by each head (a p9, c p5, b p0), then round 2 from a (p9).
    assert [task for task, _ in launcher.launched] == [a[0], c, b[0], a[1]]
    service.cancel("c", c, by="test")
    clock.advance(21)  # past the cancel grace: the pass stops c, and its slot is free
    dispatcher.tick()
    assert status(service, c) is JobStatus.CANCELLED
    # a runs two jobs, b one: b's next job takes the slot, though a's waiting job has priority 9.
    assert [task for task, _ in launcher.launched[4:]] == [b[1]]


def test_the_execution_is_recorded_on_the_attempt(env):
    service, dispatcher, launcher, _ = env
    task = submit(service)
    dispatcher.tick()
    job = service.store.get(task)
    assert job.status is JobStatus.RUNNING
    assert job.current_attempt.number == 1 and job.current_attempt.execution == f"fake:{task}:1"


def test_a_failed_launch_goes_back_to_the_queue_then_runs(env):
    service, dispatcher, launcher, _ = env
    task = submit(service)
    launcher.fail_next = True
    dispatcher.tick()
    job = service.store.get(task)
    assert job.status is JobStatus.QUEUED
    assert job.attempts[0].end_reason is EndReason.LAUNCH_FAILED and "quota" in job.attempts[0].detail
    dispatcher.tick()
    assert launcher.launched == [(task, 2)]


def test_expired_lease_requeues_and_resumes_then_fails_after_max_recoveries(env):
    service, dispatcher, launcher, clock = env
    task = submit(service)
    dispatcher.tick()
    clock.advance(61)  # past the startup grace without a heartbeat
    dispatcher.tick()
    job = service.store.get(task)
    assert job.attempts[0].end_reason is EndReason.LEASE_EXPIRED
    assert launcher.stopped == [f"fake:{task}:1"]
    assert job.status is JobStatus.RUNNING and job.current_attempt.number == 2  # relaunched in the same pass
    clock.advance(61)
    dispatcher.tick()
    job = service.store.get(task)
    assert job.status is JobStatus.FAILED and job.error.reason == "too_many_recoveries"
    assert "MAX_RECOVERIES=1" in job.error.message


def test_a_live_worker_is_left_alone(env):
    service, dispatcher, launcher, clock = env
    task = submit(service)
    dispatcher.tick()
    service.store.update(task, lambda j: worker_started(j, 1, clock(), 30, "cpu", 0))
    clock.advance(20)  # inside the 30 s lease
    dispatcher.tick()
    assert status(service, task) is JobStatus.RUNNING and launcher.stopped == []


def test_a_worker_process_that_died_is_recovered_without_waiting_for_the_lease(env):
    service, dispatcher, launcher, clock = env
    task = submit(service)
    dispatcher.tick()
    launcher.exit_codes[f"fake:{task}:1"] = -9
    dispatcher.tick()
    job = service.store.get(task)
    assert job.attempts[0].end_reason is EndReason.LEASE_EXPIRED
    assert "exited with code -9" in job.attempts[0].detail


def test_a_worker_ignoring_cancel_is_stopped_after_the_grace(env):
    service, dispatcher, launcher, clock = env
    task = submit(service)
    dispatcher.tick()
    service.store.update(task, lambda j: worker_started(j, 1, clock(), 3600, "cpu", 0))
    service.cancel("t1", task, by="U1")
    dispatcher.tick()
    assert status(service, task) is JobStatus.CANCELLING
    clock.advance(21)
    dispatcher.tick()
    assert status(service, task) is JobStatus.CANCELLED
    assert launcher.stopped == [f"fake:{task}:1"]
    assert service.store.get(task).current_attempt.stopped_at == clock()  # seen stopped in that pass


def cancelled_past_grace(service, dispatcher, clock, lease=3600):
    """A running job whose worker ignores the cancel; the clock is past the cancel grace."""
    task = submit(service)
    dispatcher.tick()
    service.store.update(task, lambda j: worker_started(j, 1, clock(), lease, "cpu", 0))
    service.cancel("t1", task, by="U1")
    clock.advance(21)
    return task


def test_a_failed_stop_is_asked_again_with_backoff_and_the_job_stays_cancelling(env):
    service, dispatcher, launcher, clock = env
    launcher.stop_failures = 2
    task = cancelled_past_grace(service, dispatcher, clock)
    execution = f"fake:{task}:1"
    dispatcher.tick()  # first call fails: next one in STOP_RETRY_SECONDS (5 s)
    assert launcher.stop_calls == [execution] and status(service, task) is JobStatus.CANCELLING
    clock.advance(4)
    dispatcher.tick()  # still waiting
    assert len(launcher.stop_calls) == 1 and status(service, task) is JobStatus.CANCELLING
    clock.advance(2)
    dispatcher.tick()  # second call fails: the wait doubles to 10 s
    assert len(launcher.stop_calls) == 2 and status(service, task) is JobStatus.CANCELLING
    clock.advance(9)
    dispatcher.tick()
    assert len(launcher.stop_calls) == 2 and status(service, task) is JobStatus.CANCELLING
    clock.advance(2)
    dispatcher.tick()  # third call accepted, and the execution is seen ended in the same pass
    job = service.store.get(task)
    assert launcher.stopped == [execution] and job.status is JobStatus.CANCELLED
    attempt = job.current_attempt
    assert attempt.end_reason is EndReason.CANCELLED and attempt.stopped_at == clock() == attempt.ended_at
    assert dispatcher.recovery.stopper.pending() == []


def test_an_accepted_stop_keeps_the_job_cancelling_until_the_execution_is_seen_ended(env):
    service, dispatcher, launcher, clock = env
    launcher.stops_take_effect = False  # Cloud Run accepted CancelExecution; the execution is still running
    task = cancelled_past_grace(service, dispatcher, clock)
    execution = f"fake:{task}:1"
    dispatcher.tick()
    clock.advance(30)
    dispatcher.tick()
    assert status(service, task) is JobStatus.CANCELLING
    assert launcher.stop_calls == [execution]  # accepted once: not asked again
    launcher.exit_codes[execution] = -15
    clock.advance(3)
    dispatcher.tick()
    job = service.store.get(task)
    assert job.status is JobStatus.CANCELLED and job.current_attempt.stopped_at == clock()
    assert job.cost.billed_seconds == pytest.approx(21 + 30 + 3)  # billed until the execution was seen ended


def test_a_stop_that_fails_for_ever_ends_the_job_at_its_lease_and_is_still_asked_after(env):
    service, dispatcher, launcher, clock = env
    launcher.stop_failures = 10**6
    task = cancelled_past_grace(service, dispatcher, clock, lease=60)  # the lease runs out 39 s after this
    execution = f"fake:{task}:1"
    for _ in range(38):
        clock.advance(1)
        dispatcher.tick()
        assert status(service, task) is JobStatus.CANCELLING
    clock.advance(2)
    dispatcher.tick()  # the lease expired: the job ends, the stop is not confirmed
    job = service.store.get(task)
    assert job.status is JobStatus.CANCELLED and job.lease is None
    attempt = job.current_attempt
    assert attempt.end_reason is EndReason.LEASE_EXPIRED and attempt.stopped_at is None
    assert "failed stop calls" in attempt.detail and "503" in attempt.detail
    assert len(launcher.stop_calls) == 4  # at 21 s, then 5, 10 and 20 s later: backoff, not one per pass
    # The job is over, the execution is not forgotten: its stop is asked again until accepted.
    launcher.stop_failures = 0
    clock.advance(300)
    dispatcher.tick()
    assert launcher.stopped == [execution] and dispatcher.recovery.stopper.pending() == []
    clock.advance(300)
    dispatcher.tick()
    assert launcher.stopped == [execution]  # accepted once, asked no more


def test_only_the_lock_holder_dispatches(env, tmp_path):
    service, dispatcher, launcher, clock = env
    other = Dispatcher(dispatcher.backend, clock=clock, owner="someone-else")
    submit(service)
    assert other.tick() and len(launcher.launched) == 1  # other takes the lock first
    submit(service)
    assert dispatcher.tick() == []  # locked out while other's lock is valid
    clock.advance(60)
    assert len(dispatcher.tick()) == 1


# -- the write gap (STORE_WRITE_GAP; on by default on the gcp backend only) ---------------------

GAP = 0.4


@pytest.fixture
def gapped(tmp_path):
    """A dispatcher on the real clock with a write gap, over a SQLite store whose writes are stamped."""
    settings = load_settings(LAXAI_HOME=tmp_path, MAX_CONCURRENT_JOBS=1, STORE_WRITE_GAP=GAP)
    launcher = RecordingLauncher()
    backend = open_backend(settings, launcher)
    write_times.install(settings.db_path)
    dispatcher = Dispatcher(backend)
    yield JobService(backend), dispatcher, launcher, settings.db_path
    dispatcher.stop()
    backend.close()


def test_a_fresh_job_waits_out_the_gap_and_its_launch_record_keeps_it(gapped):
    service, dispatcher, launcher, db = gapped
    task = submit(service)
    assert dispatcher.tick() == [] and launcher.launched == []  # created just now: left for a later pass
    assert status(service, task) is JobStatus.QUEUED
    wait = dispatcher.deferred_for()
    assert wait is not None and 0 < wait <= GAP + STAMP_SLACK
    time.sleep(wait)
    (job,) = dispatcher.tick()
    assert job.task_id == task and job.current_attempt.execution == f"fake:{task}:1"
    assert dispatcher.deferred_for() is None
    stamped = write_times.writes(db, task)
    assert [kind for kind, _ in stamped] == ["created", "status:running", "launched"]
    assert all(gap >= GAP for _, _, gap in write_times.gaps(stamped)), write_times.gaps(stamped)


def test_a_deferred_job_keeps_its_place_in_the_order(gapped):
    service, dispatcher, launcher, _ = gapped
    older = submit(service, "a")
    time.sleep(GAP + STAMP_SLACK)
    urgent = submit(service, "b", priority=5)
    # One slot: the fresh high-priority job is first in line, so the older one does not take the slot meanwhile.
    assert dispatcher.tick() == []
    time.sleep(dispatcher.deferred_for())
    assert [job.task_id for job in dispatcher.tick()] == [urgent]
    assert status(service, older) is JobStatus.QUEUED


def test_the_pull_loop_comes_back_for_a_deferred_job_before_its_interval(gapped):
    service, dispatcher, launcher, _ = gapped
    dispatcher.settings.DISPATCH_INTERVAL = 30  # the next timed pass would be far off
    dispatcher.start()
    started = time.monotonic()
    task = submit(service)  # its queue message wakes the loop, whose pass defers the job
    while not launcher.launched and time.monotonic() - started < 10:
        time.sleep(0.05)
    assert launcher.launched == [(task, 1)]
    assert time.monotonic() - started < 5  # within a few gaps, not DISPATCH_INTERVAL


def test_without_a_gap_a_fresh_job_is_claimed_and_recorded_at_once(env):
    service, dispatcher, launcher, clock = env
    clock.now = utcnow() - timedelta(hours=1)  # even "before" it was written: no gap, no wait
    task = submit(service)
    started = time.monotonic()
    (job,) = dispatcher.tick()
    assert job.task_id == task and time.monotonic() - started < GAP
    assert dispatcher.deferred_for() is None


def test_the_launcher_is_prepared_before_any_claim_and_only_when_a_job_waits(env):
    """A local launcher's prepare() starts its warm-start process (seconds): done before the pass
    claims, so a crash meanwhile leaves the job queued, not claimed without an execution."""
    service, dispatcher, launcher, _ = env
    seen: list[list[JobStatus]] = []
    launcher.wants_preparing = lambda: not seen
    launcher.prepare = lambda: seen.append([j.status for j in service.store.list(limit=10)])
    dispatcher.tick()
    assert seen == []  # nothing waits: nothing started for nothing
    task = submit(service)
    dispatcher.tick()
    assert seen == [[JobStatus.QUEUED]]  # prepared while the job was still queued
    assert [t for t, _ in launcher.launched] == [task]  # then claimed and launched in that pass
    submit(service)
    dispatcher.tick()
    assert len(seen) == 1  # prepared once: it no longer wants it

"""Before worker_started, a worker waits (reading, never writing) for the dispatcher's launch record,
but not forever (worker/gate.py ``GatedStore.await_launch_record``); on a real SQLite store."""

from __future__ import annotations

import threading
import time

from orchestrator.domain.job import utcnow
from orchestrator.domain.transitions import record_execution
from worker.gate import GatedStore, WriteGate

GAP = 0.2


def test_it_returns_once_the_launch_record_lands_and_the_gate_keeps_its_distance(harness):
    task_id = harness.submit()
    number = harness.job(task_id).current_attempt.number  # submit() claims it
    store = GatedStore(harness.store, WriteGate(GAP))
    cursor = harness.store.last_cursor()
    recorder = threading.Timer(GAP, lambda: harness.store.update(
        task_id, lambda j: record_execution(j, number, "fake:1", utcnow()), kind="launched"))
    started = time.monotonic()
    recorder.start()
    store.await_launch_record(task_id, number)
    waited = time.monotonic() - started
    recorder.join()
    assert GAP * 0.9 <= waited < 3 * GAP  # up once the record was there, not at the deadline
    assert [event.kind for event in harness.events(task_id, cursor)] == ["launched"]  # it wrote nothing
    assert store.gate.wait_seconds() > GAP / 2  # the next write keeps its distance from the record


def test_without_a_launch_record_it_gives_up_a_few_gaps_after_the_claim(harness):
    task_id = harness.submit()
    number = harness.job(task_id).current_attempt.number  # submit() claims it
    store = GatedStore(harness.store, WriteGate(GAP))
    started = time.monotonic()
    store.await_launch_record(task_id, number)
    assert 2 * GAP <= time.monotonic() - started < 3 * GAP + 1.0


def test_it_does_not_wait_for_another_attempt_or_without_a_gap(harness):
    task_id = harness.submit()
    number = harness.job(task_id).current_attempt.number  # submit() claims it
    started = time.monotonic()
    GatedStore(harness.store, WriteGate(GAP)).await_launch_record(task_id, number + 1)  # not the live attempt
    GatedStore(harness.store, WriteGate(0)).await_launch_record(task_id, number)  # no write budget
    assert time.monotonic() - started < GAP

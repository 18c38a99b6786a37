"""JobQueue contract: at-least-once delivery with ack deadlines, locally and on Pub/Sub (emulator)."""

from __future__ import annotations

import threading
import time

from orchestrator.queues.local import LocalJobQueue


def pull_all(queue, count: int, timeout: float = 15.0):
    """Pull until ``count`` messages came (a pull may return fewer than are ready)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(queue.pull(max_messages=count - len(got), timeout=max(0.0, deadline - time.monotonic())))
    return got


def test_published_messages_are_pulled_then_gone_once_acked(queue):
    first_id = queue.publish("task-1", reason="submitted")
    second_id = queue.publish("task-2")
    assert first_id and second_id and first_id != second_id

    messages = pull_all(queue, 2)
    assert sorted(m.task_id for m in messages) == ["task-1", "task-2"]
    by_task = {m.task_id: m for m in messages}
    assert by_task["task-1"].attributes == {"reason": "submitted"}
    assert by_task["task-2"].attributes == {}
    assert {m.delivery_attempt for m in messages} == {1}
    for message in messages:
        queue.ack(message.ack_id)
    assert queue.pull(timeout=0.5) == []


def test_pull_waits_at_most_its_timeout(queue):
    started = time.monotonic()
    assert queue.pull(timeout=0.5) == []
    assert 0.4 <= time.monotonic() - started < 3.0


def test_a_waiting_pull_gets_a_message_published_meanwhile(queue):
    publisher = threading.Timer(0.3, lambda: queue.publish("task-late"))
    publisher.start()
    try:
        (message,) = pull_all(queue, 1, timeout=10)
    finally:
        publisher.join()
    assert message.task_id == "task-late"
    queue.ack(message.ack_id)


def test_nack_redelivers_at_once(queue):
    queue.publish("task-1")
    (first,) = pull_all(queue, 1)
    queue.nack(first.ack_id)
    (second,) = pull_all(queue, 1, timeout=5)
    assert second.task_id == "task-1"
    assert second.delivery_attempt == first.delivery_attempt + 1
    queue.ack(second.ack_id)
    assert queue.pull(timeout=0.3) == []


def test_unacked_message_comes_back_after_the_ack_deadline(queue):
    queue.publish("task-1")
    (first,) = pull_all(queue, 1)
    assert queue.pull(timeout=0.2) == []  # leased: invisible until the deadline
    (again,) = pull_all(queue, 1, timeout=queue.ack_deadline + 10)
    assert again.task_id == "task-1"
    assert again.delivery_attempt == 2
    assert again.ack_id != first.ack_id
    queue.ack(again.ack_id)
    assert queue.pull(timeout=0.3) == []


def test_local_queue_survives_reopening_the_database(tmp_path):
    path = tmp_path / "laxai.db"
    queue = LocalJobQueue(path, ack_deadline=1.0)
    queue.publish("task-1", reason="submitted")
    queue.publish("task-2")
    (taken,) = queue.pull(max_messages=1, timeout=1)
    queue.close()

    reopened = LocalJobQueue(path, ack_deadline=1.0)
    assert reopened.depth() == 2
    fresh = reopened.pull(max_messages=10, timeout=1)
    assert [m.task_id for m in fresh] == ["task-2"]  # task-1 is still leased to the old process
    reopened.ack(fresh[0].ack_id)
    (redelivered,) = reopened.pull(max_messages=10, timeout=3)
    assert (redelivered.task_id, redelivered.delivery_attempt) == (taken.task_id, 2)
    assert redelivered.attributes == {"reason": "submitted"}
    reopened.close()

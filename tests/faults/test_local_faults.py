"""Fault injection with real processes on the local backend: killed workers, a killed service,
store errors, SIGTERM, and a slow but healthy worker."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time

import pytest

from tests.support.serve import ServeProcess, kill_workers, tiny_job, wait_for

pytestmark = pytest.mark.slow

THREE_EPOCHS = tiny_job(training_params={"epochs": 3}, dataset="synthetic:32")


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "state"
    kill_workers(tmp_path / "state")


def running_pid(home, task: str) -> int:
    """The pid of the job's current worker, read from the store (the execution handle)."""
    conn = sqlite3.connect(home / "laxai.db")
    try:
        data = json.loads(conn.execute("SELECT data FROM jobs WHERE task_id = ?", (task,)).fetchone()[0])
    finally:
        conn.close()
    execution = data["attempts"][-1]["execution"]
    assert execution and execution.startswith("local:"), execution
    return int(execution.split(":")[1])


def wait_epoch(client, task: str, epoch: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = client.get("/status", params={"task_id": task}).json()
        if view["status"] == "running" and view["progress"]["epoch"] >= epoch:
            return view
        assert view["status"] in ("queued", "running"), view
        time.sleep(0.1)
    raise AssertionError(f"{task} never reached epoch {epoch}")


def test_kill_9_worker_mid_epoch_resumes_from_checkpoint_and_completes(home):
    with ServeProcess(home) as serve, serve.client() as client:
        task = client.post("/orchestrate", json=THREE_EPOCHS).json()["task_id"]
        wait_epoch(client, task, 1)
        # The premise: epoch 1's checkpoint is in the artifact store (its upload runs beside training,
        # so the epoch can show before it lands); the kill then comes mid-epoch 2.
        checkpoint = home / "artifacts" / task / "last.pt"
        deadline = time.monotonic() + 60
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpoint.exists(), "epoch 1's checkpoint was never uploaded"
        os.kill(running_pid(home, task), signal.SIGKILL)
        view = wait_for(client, [task])[task]
    assert view["status"] == "completed", view
    assert view["progress"]["epoch"] == 3
    first, second = view["attempts"]
    assert first["why"] == "lease_expired" and "exited with code -9" in first["detail"]
    assert second["why"] == "completed" and second["start_epoch"] >= 1  # resumed, not from zero
    log = (home / "logs" / f"{task}.log").read_text()
    assert "Resuming training" in log


def test_sigterm_interrupts_and_the_next_execution_resumes(home):
    with ServeProcess(home) as serve, serve.client() as client:
        task = client.post("/orchestrate", json=THREE_EPOCHS).json()["task_id"]
        wait_epoch(client, task, 1)
        os.kill(running_pid(home, task), signal.SIGTERM)
        view = wait_for(client, [task])[task]
    assert view["status"] == "completed" and view["progress"]["epoch"] == 3, view
    first, second = view["attempts"]
    assert first["why"] == "interrupted"
    assert second["start_epoch"] >= 1 and second["why"] == "completed"


def test_kill_9_service_with_jobs_queued_and_running_loses_nothing_and_runs_nothing_twice(home):
    serve = ServeProcess(home, MAX_CONCURRENT_JOBS=1).start()
    with serve.client() as client:
        tasks = [client.post("/orchestrate", json=tiny_job(custom_name=f"k{i}")).json()["task_id"]
                 for i in range(3)]
        wait_for(client, tasks[:1], statuses={"running"})
    serve.stop(signal.SIGKILL)
    restarted = ServeProcess(home, MAX_CONCURRENT_JOBS=1)
    with restarted, restarted.client() as client:
        views = wait_for(client, tasks)
    assert [views[t]["status"] for t in tasks] == ["completed"] * 3
    assert all(len(views[t]["attempts"]) == 1 for t in tasks), views  # nobody relaunched a live worker


def test_store_errors_during_progress_writes_do_not_stop_training(home):
    # Writers give up after 0.3 s on a locked database, so holding the lock makes writes fail.
    with ServeProcess(home, LAXAI_SQLITE_BUSY_TIMEOUT="0.3", LEASE_SECONDS="30", PROGRESS_INTERVAL="0.2") as serve, \
            serve.client() as client:
        task = client.post("/orchestrate", json=THREE_EPOCHS).json()["task_id"]
        wait_epoch(client, task, 1)
        conn = sqlite3.connect(home / "laxai.db", isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(4)
        conn.execute("ROLLBACK")
        conn.close()
        view = wait_for(client, [task])[task]
    assert view["status"] == "completed" and view["progress"]["epoch"] == 3, view
    assert len(view["attempts"]) == 1
    log = (home / "logs" / f"{task}.log").read_text()
    assert "progress write failed" in log or "heartbeat failed" in log


def test_a_slow_but_alive_worker_is_not_recovered(home):
    # Epochs (with validation) take longer than the whole lease; heartbeats come from their own thread.
    slow = tiny_job(training_params={"epochs": 2, "batch_size": 4}, model_params={"input_size": 160},
                    dataset="synthetic:48")
    lease = 2.0
    seen: dict[int, float] = {}  # epoch -> when /status first showed it

    def note(views):
        seen.setdefault(next(iter(views.values()))["progress"]["epoch"], time.monotonic())

    with ServeProcess(home, LEASE_SECONDS=lease, CANCEL_POLL_SECONDS="0.5") as serve, serve.client() as client:
        task = client.post("/orchestrate", json=slow).json()["task_id"]
        view = wait_for(client, [task], on_poll=note)[task]
    assert view["status"] == "completed", view
    assert [a["why"] for a in view["attempts"]] == ["completed"]
    # The premise: the second epoch (training and validation) outlasted the whole lease (polls are 0.25 s apart).
    assert seen[2] - seen[1] > lease + 0.5, seen

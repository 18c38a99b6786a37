"""SQLite writers give up after STORE_TIMEOUT, each measuring its own deadline (issue 14, finding 11).

The database file is locked by another real process (``BEGIN IMMEDIATE`` held); ten writers
of this process must each fail after about STORE_TIMEOUT, together, not one after another;
over REST the submit answers 503 asking for a retry, and nothing is half-written.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from orchestrator.config import load_settings
from orchestrator.domain.job import Job
from orchestrator.domain.spec import JobSpec
from orchestrator.serve import ServiceThread
from orchestrator.stores.base import StoreError
from orchestrator.stores.sqlite import SqliteJobStore

TIMEOUT = 1.0
SLACK = 0.8  # scheduling noise on a shared machine; serial waiting would take 10 x TIMEOUT
WRITERS = 10

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
conn.execute("ROLLBACK")
"""


@contextmanager
def locked_by_another_process(path: Path):
    """The database's write lock, held by a separate Python process until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        holder.wait(10)


def a_job(i: int) -> Job:
    return Job(tenant_id="team-a", spec=JobSpec(tenant_id="team-a", custom_name=f"w{i}"))


def timed(fn):
    started = time.monotonic()
    try:
        fn()
    except StoreError:
        return time.monotonic() - started
    raise AssertionError("the write went through a locked database")


def test_ten_writers_behind_a_locked_file_each_fail_after_the_timeout(tmp_path):
    path = tmp_path / "laxai.db"
    store = SqliteJobStore(path, timeout=TIMEOUT)
    try:
        with locked_by_another_process(path):
            started = time.monotonic()
            with ThreadPoolExecutor(WRITERS) as pool:
                waits = list(pool.map(lambda i: timed(lambda: store.create(a_job(i))), range(WRITERS)))
            wall = time.monotonic() - started
        assert all(wait <= TIMEOUT + SLACK for wait in waits), waits
        assert max(waits) >= TIMEOUT * 0.8, waits  # they did wait for the lock, not fail blindly
        assert wall <= TIMEOUT + 2 * SLACK, (wall, waits)
        assert store.list(limit=100) == []  # nothing half-written
        created, made = store.create(a_job(99))  # and once the lock is free, writes go through
        assert made and store.get(created.task_id) is not None
    finally:
        store.close()


def test_updates_and_creates_mixed_fail_within_their_own_deadlines(tmp_path):
    path = tmp_path / "laxai.db"
    store = SqliteJobStore(path, timeout=TIMEOUT)
    job, _ = store.create(a_job(0))
    try:
        with locked_by_another_process(path):
            # A writer arriving late measures from its own start: it may not inherit an
            # earlier writer's used-up deadline, nor wait for the earlier ones in turn.
            first = threading.Thread(target=lambda: timed(lambda: store.create(a_job(1))))
            first.start()
            time.sleep(TIMEOUT / 2)
            late = timed(lambda: store.update(job.task_id, lambda j: j.model_copy(update={"recoveries": 1})))
            first.join()
        assert TIMEOUT * 0.8 <= late <= TIMEOUT + SLACK, late
        assert store.get(job.task_id).recoveries == 0
    finally:
        store.close()


@pytest.fixture
def service(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path / "home", LAXAI_API_TOKENS="tok-a-123456:team-a",
                             STORE_TIMEOUT=TIMEOUT)
    with ServiceThread(settings, dispatch=False) as svc:
        yield svc, settings.db_path


def test_rest_submit_on_a_locked_database_is_503_with_a_retry_and_stores_nothing(service):
    service, db_path = service
    body = {"training_params": {"epochs": 1}, "custom_name": "locked"}
    headers = {"Authorization": "Bearer tok-a-123456"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
        with locked_by_another_process(db_path):
            def submit(i: int) -> tuple[float, httpx.Response]:
                started = time.monotonic()
                response = client.post("/orchestrate", json=body, headers={"Idempotency-Key": f"k{i}"})
                return time.monotonic() - started, response

            with ThreadPoolExecutor(WRITERS) as pool:
                answers = list(pool.map(submit, range(WRITERS)))
        for took, response in answers:
            assert response.status_code == 503, response.text
            assert "retry" in response.json()["error"] and response.headers["retry-after"].isdigit()
            assert "Traceback" not in response.text and "laxai.db" not in response.text
            assert took <= TIMEOUT + 2 * SLACK, [a for a, _ in answers]
        assert client.get("/jobs").json()["jobs"] == []  # nothing half-written
        again = client.post("/orchestrate", json=body, headers={"Idempotency-Key": "k0"})
        assert again.status_code == 202, again.text  # the key was not taken by the failed attempt

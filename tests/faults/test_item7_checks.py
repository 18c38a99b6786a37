"""The reliability claims that had no test of their own, each checked against the bound the README
states: a lost machine (no exit code, no heartbeat), a killed service with a job mid-run, SIGTERM's
grace and the seconds it loses, TRAINING_TIMEOUT across executions, a failing W&B, a REST 503 that
changes nothing, and dead letters on Pub/Sub. Real processes, a real SQLite file, the emulators."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from orchestrator.domain.job import Job
from tests.gcp_fixtures import pubsub_emulator, pubsub_names  # noqa: F401 - fixtures, used by name
from tests.support.serve import REPO, ServeProcess, kill_workers, tiny_job, wait_for

LONG = tiny_job(training_params={"epochs": 3}, dataset="synthetic:64")


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "state"
    kill_workers(tmp_path / "state")


def stored(home: Path, task: str) -> Job:
    """The job as the store holds it (fields the REST view leaves out, e.g. lost_seconds)."""
    conn = sqlite3.connect(home / "laxai.db")
    try:
        return Job.model_validate_json(conn.execute("SELECT data FROM jobs WHERE task_id = ?", (task,)).fetchone()[0])
    finally:
        conn.close()


def worker_pid(home: Path, task: str, attempt: int) -> int:
    execution = stored(home, task).attempts[attempt - 1].execution
    assert execution and execution.startswith("local:"), execution
    return int(execution.split(":")[1])


def running(pid: int) -> bool:
    """Alive and not a zombie (a SIGSTOPped process counts as running: it still holds its GPU)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def poll(what: str, predicate, timeout: float = 240, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s")


def started(home: Path, task: str, attempt: int, epoch: int = 0) -> bool:
    job = stored(home, task)
    return (len(job.attempts) >= attempt and job.attempts[attempt - 1].started_at is not None
            and job.attempts[attempt - 1].ended_at is None and job.progress.epoch >= epoch)


# -- a lost machine ------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_lost_machine_is_requeued_once_its_lease_expires_then_fails_after_max_recoveries(home):
    """A frozen worker (SIGSTOP: no exit code, no heartbeat, the process still there) is a machine
    lost: recovered only when its lease has expired, never earlier; the second loss, with
    MAX_RECOVERIES=1, fails the job too_many_recoveries and says so."""
    lease = 4.0
    with ServeProcess(home, LEASE_SECONDS=lease, MAX_RECOVERIES=1) as serve, serve.client() as client:
        task = client.post("/orchestrate", json=LONG).json()["task_id"]
        poll("attempt 1 trains", lambda: started(home, task, 1, epoch=1))
        first = worker_pid(home, task, 1)
        os.kill(first, signal.SIGSTOP)
        frozen = time.monotonic()
        poll("attempt 1 recovered", lambda: stored(home, task).attempts[0].end_reason is not None)
        waited = time.monotonic() - frozen
        # Its last heartbeat came at most a quarter lease before the freeze.
        assert waited >= lease * 0.75 - 0.3, f"recovered {waited:.1f} s after the freeze, lease {lease} s"
        lost = stored(home, task).attempts[0]
        assert lost.end_reason.value == "lease_expired" and "exited" not in (lost.detail or ""), lost
        poll("the frozen worker is stopped", lambda: not running(first), timeout=30)

        poll("attempt 2 trains", lambda: started(home, task, 2))
        os.kill(worker_pid(home, task, 2), signal.SIGSTOP)
        view = wait_for(client, [task], timeout=120)[task]
    assert view["status"] == "failed", view
    assert view["error"]["reason"] == "too_many_recoveries" and "MAX_RECOVERIES=1" in view["error"]["message"]
    assert [a["why"] for a in view["attempts"]] == ["lease_expired", "lease_expired"]


# -- the service killed with a job mid-run -------------------------------------------------------


@pytest.mark.slow
def test_kill_9_service_mid_run_the_worker_lives_on_and_is_not_relaunched(home):
    """The job is still running when the service dies and when it is back: the same worker process
    finishes it, nothing launches it again, and the queued jobs run after it."""
    serve = ServeProcess(home, MAX_CONCURRENT_JOBS=1).start()
    with serve.client() as client:
        task = client.post("/orchestrate", json=tiny_job(training_params={"epochs": 4}, dataset="synthetic:64")
                           ).json()["task_id"]
        queued = [client.post("/orchestrate", json=tiny_job(custom_name=f"q{i}")).json()["task_id"] for i in range(2)]
        poll("the first job trains", lambda: started(home, task, 1, epoch=1))
    pid = worker_pid(home, task, 1)
    serve.stop(signal.SIGKILL)
    assert running(pid), "the worker died with the service"
    restarted = ServeProcess(home, MAX_CONCURRENT_JOBS=1, port=serve.port)
    with restarted, restarted.client() as client:
        assert running(pid) and stored(home, task).status.value == "running", "the premise: still mid-run"
        views = wait_for(client, [task, *queued])
    assert all(v["status"] == "completed" for v in views.values()), views
    assert all(len(v["attempts"]) == 1 for v in views.values()), views  # nothing relaunched or run twice
    assert worker_pid(home, task, 1) == pid and views[task]["progress"]["epoch"] == 4
    assert min(v["attempts"][0]["started"] for t, v in views.items() if t in queued) >= views[task]["finished_at"]


# -- SIGTERM: the grace, and the seconds it costs -----------------------------------------------


@pytest.mark.slow
def test_sigterm_mid_epoch_stops_within_the_grace_and_counts_the_seconds_lost(home):
    """Cloud Run gives ~10 s between SIGTERM and SIGKILL (the README's bound): the worker is gone
    within it, the attempt ends `interrupted`, and the training since the last checkpoint is lost
    and counted (> 0, no more than the attempt ran)."""
    grace = 10.0
    job = tiny_job(training_params={"epochs": 3}, dataset="synthetic:96")
    with ServeProcess(home, PROGRESS_INTERVAL="0.2") as serve, serve.client() as client:
        task = client.post("/orchestrate", json=job).json()["task_id"]
        poll("mid-epoch 2", lambda: started(home, task, 1, epoch=1) and (stored(home, task).progress.batch or 0) >= 2)
        pid = worker_pid(home, task, 1)
        os.kill(pid, signal.SIGTERM)
        sent = time.monotonic()
        poll("the worker stops", lambda: not running(pid), timeout=60, every=0.02)
        took = time.monotonic() - sent
        poll("attempt 1 ends", lambda: stored(home, task).attempts[0].end_reason is not None, timeout=30)
    first = stored(home, task).attempts[0]
    assert took <= grace, f"stopped {took:.1f} s after SIGTERM; Cloud Run kills at {grace} s"
    assert first.end_reason.value == "interrupted", first
    ran = (first.ended_at - first.started_at).total_seconds()
    assert first.lost_seconds is not None and 0 < first.lost_seconds <= ran, (first.lost_seconds, ran)


# -- TRAINING_TIMEOUT across executions ----------------------------------------------------------


@pytest.mark.slow
def test_training_timeout_counts_the_time_of_earlier_executions(home):
    """Execution 1 trains ~a third of TRAINING_TIMEOUT and is interrupted; execution 2 gets only what
    is left: the job fails `timeout` with all executions together at the limit, not one at it."""
    limit = 45.0
    job = tiny_job(training_params={"epochs": 100}, dataset="synthetic:64")
    with ServeProcess(home, TRAINING_TIMEOUT=limit) as serve, serve.client() as client:
        task = client.post("/orchestrate", json=job).json()["task_id"]
        poll("attempt 1 trains", lambda: started(home, task, 1, epoch=1))
        first_started = stored(home, task).attempts[0].started_at
        poll("a third of the limit", lambda: (stored(home, task).progress.epoch >= 1 and
                                              time.time() - first_started.timestamp() >= limit / 3), every=0.2)
        os.kill(worker_pid(home, task, 1), signal.SIGTERM)
        view = wait_for(client, [task], timeout=240)[task]
    final = stored(home, task)
    assert view["status"] == "failed" and final.error.reason == "timeout", view
    first, second = final.attempts
    spent = [(a.ended_at - a.started_at).total_seconds() for a in (first, second)]
    assert first.end_reason.value == "interrupted" and spent[0] >= limit / 3, spent
    # Execution 2 trains only for what is left (a batch and the closing write later); its start-up is
    # billed and counted too, but cannot be cut short (the worker checks the limit once it runs).
    assert sum(spent) >= limit * 0.95, spent
    trained = second.training_seconds or 0.0
    assert trained <= max(0.0, limit - spent[0]) + 10, (spent, trained)


# -- W&B failing -----------------------------------------------------------------------------------

FAILING_WANDB = '''
"""A W&B that fails every call after init: an outage mid-run (injected via PYTHONPATH)."""


class Settings:
    def __init__(self, **kwargs):
        pass


class _Broken:
    def __getattr__(self, name):
        raise RuntimeError(f"W&B is down (run.{name})")


def init(**kwargs):
    print("FAILING WANDB: init", flush=True)
    return _Broken()


def __getattr__(name):
    raise RuntimeError(f"W&B is down (wandb.{name})")
'''


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["every call", "init"])
def test_a_failing_wandb_never_fails_the_job(home, tmp_path, broken):
    fake = tmp_path / "wandb-down"
    (fake / "wandb").mkdir(parents=True)
    source = FAILING_WANDB if broken == "every call" else FAILING_WANDB.replace(
        'print("FAILING WANDB: init", flush=True)\n    return _Broken()', 'raise RuntimeError("W&B is down (init)")')
    (fake / "wandb" / "__init__.py").write_text(source)
    path = os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))
    with ServeProcess(home, PYTHONPATH=path) as serve, serve.client() as client:
        task = client.post("/orchestrate", json=tiny_job(training_params={"epochs": 2})).json()["task_id"]
        view = wait_for(client, [task])[task]
    assert view["status"] == "completed" and set(view["metrics"]) >= {"mAP50", "mAP50-95"}, view
    assert view["artifacts"]["wandb_url"] is None and view["artifacts"]["best_checkpoint"]
    log = (home / "logs" / f"{task}.log").read_text()
    assert "W&B is down" in log, log[-2000:]  # the injected W&B was the one the worker used


# -- REST 503: nothing changed ----------------------------------------------------------------------


def test_a_503_on_cancel_and_retry_changes_nothing(tmp_path):
    """Cancel and retry while the store cannot be written: 503 with Retry-After, the jobs as they
    were (same version, no change-feed row), no new job; the same requests work once it can."""
    from orchestrator.config import load_settings
    from orchestrator.serve import ServiceThread
    from tests.security.test_sqlite_timeout import locked_by_another_process

    settings = load_settings(LAXAI_HOME=tmp_path / "home", LAXAI_API_TOKENS="tok-a-123456:team-a", STORE_TIMEOUT=1.0)
    with ServiceThread(settings, dispatch=False) as svc, httpx.Client(
            base_url=svc.url, headers={"Authorization": "Bearer tok-a-123456"}, timeout=30) as client:
        queued, ended = (client.post("/orchestrate", json={"custom_name": n}).json()["task_id"] for n in "ab")
        assert client.post(f"/jobs/{ended}/cancel").json()["status"] == "cancelled"
        before = {t: client.get(f"/jobs/{t}").json() for t in (queued, ended)}
        store = svc.runtime.backend.store
        cursor = store.last_cursor()
        with locked_by_another_process(settings.db_path):
            answers = [client.post(f"/jobs/{queued}/cancel"), client.post(f"/jobs/{ended}/retry")]
        for response in answers:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"].isdigit() and "Traceback" not in response.text
        assert {t: client.get(f"/jobs/{t}").json() for t in (queued, ended)} == before
        assert len(client.get("/jobs").json()["jobs"]) == 2
        assert store.changes(cursor, limit=100) == []  # not one write
        assert client.post(f"/jobs/{queued}/cancel").status_code == 200
        assert client.post(f"/jobs/{ended}/retry").status_code == 202


# -- dead letters ------------------------------------------------------------------------------------


@pytest.mark.gcp
def test_a_message_nacked_past_max_delivery_attempts_lands_on_the_dead_letter_topic(pubsub_names):
    """As deploy.sh wires it (--max-delivery-attempts=10), and as ensure_topology does on the emulator:
    the 10th nack moves the message to the dead-letter topic, where its subscription keeps it."""
    from orchestrator.config import load_settings
    from orchestrator.queues.pubsub import PubSubJobQueue

    deployed = int(re.search(r"--max-delivery-attempts=(\d+)", (REPO / "deploy.sh").read_text()).group(1))
    names = pubsub_names
    settings = load_settings(GOOGLE_CLOUD_PROJECT=names.project, TRAINING_TOPIC=names.topic,
                             TRAINING_SUBSCRIPTION=names.subscription, DEAD_LETTER_TOPIC=names.dead_letter_topic)
    queue = PubSubJobQueue.from_settings(settings, ack_deadline=10)
    assert queue.max_delivery_attempts == deployed
    queue.ensure_topology()
    queue.publish("task-dead")
    attempts = []
    while len(attempts) < deployed:
        for message in queue.pull(timeout=5):
            assert message.task_id == "task-dead"
            attempts.append(message.delivery_attempt)
            queue.nack(message.ack_id)
    assert attempts == list(range(1, deployed + 1))
    # Not delivered an 11th time (the emulator forwards it as the next delivery comes due).
    assert queue.pull(timeout=3) == []
    dead = PubSubJobQueue(names.project, names.dead_letter_topic, f"{names.dead_letter_topic}-sub")
    letters = poll("a dead letter", lambda: dead.pull(timeout=2), timeout=30)
    assert [m.task_id for m in letters] == ["task-dead"]
    assert letters[0].attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == str(deployed)

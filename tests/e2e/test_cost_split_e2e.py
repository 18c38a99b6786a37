"""Where the money went, with real workers on the local backend: `laxai serve` as a process, tiny real
trainings, the split read over HTTP (/status ``cost``) and from `laxai status`; a job interrupted by
SIGTERM, and one whose worker is killed with SIGKILL, after a checkpoint lose the training since it."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.faults.test_local_faults import THREE_EPOCHS, running_pid, wait_epoch
from tests.support.serve import LAXAI, ServeProcess, kill_workers, tiny_job, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "state"
    kill_workers(tmp_path / "state")


def assert_split_adds_up(cost: dict) -> None:
    parts = cost["training_s"] + cost["overhead_s"] + cost["lost_s"]
    assert parts == pytest.approx(cost["billed_seconds"], abs=0.01), cost
    dollars = cost["training_usd"] + cost["overhead_usd"] + cost["lost_usd"]
    assert dollars == pytest.approx(cost["usd"], abs=1e-5), cost


def test_a_completed_job_splits_its_billed_time_over_rest_and_the_cli(home):
    with ServeProcess(home, PROGRESS_INTERVAL="0.5") as serve, serve.client() as client:
        task = client.post("/orchestrate", json=tiny_job(training_params={"epochs": 2},
                                                         dataset="synthetic:16")).json()["task_id"]
        view = wait_for(client, [task])[task]
        env = {**serve.env, "LAXAI_URL": serve.url, "LAXAI_TOKEN": serve.token}
        shown = subprocess.run([LAXAI, "status", task], env=env, capture_output=True, text=True, timeout=120)
    assert view["status"] == "completed", view
    cost = view["cost"]
    assert cost["training_s"] > 0 and cost["overhead_s"] > 0 and cost["lost_s"] == 0, cost
    assert cost["training_usd"] > 0 and cost["overhead_usd"] > 0, cost
    assert_split_adds_up(cost)
    # Imports, the synthetic dataset and the final uploads are billed too: a tiny run is mostly overhead.
    assert cost["overhead_s"] > 1.0, cost
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Where it went" in shown.stdout and "training $" in shown.stdout and "overhead $" in shown.stdout


def wait_checkpoint(home, task: str, epochs: int = 1) -> None:
    """Wait until the job's epoch-``epochs`` last.pt is in the artifact store, then a little into the next
    epoch, so there is training after the checkpoint to lose."""
    wait_for_file = home / "artifacts" / task / "last.pt"
    deadline = time.monotonic() + 60
    while not wait_for_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wait_for_file.exists(), f"epoch {epochs}'s checkpoint was never uploaded"
    time.sleep(1.0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_an_interrupted_job_counts_the_training_since_its_checkpoint_as_lost(home, sig):
    with ServeProcess(home, PROGRESS_INTERVAL="0.5") as serve, serve.client() as client:
        task = client.post("/orchestrate", json=THREE_EPOCHS).json()["task_id"]
        wait_epoch(client, task, 1)
        wait_checkpoint(home, task)
        os.kill(running_pid(home, task), sig)
        view = wait_for(client, [task])[task]
    assert view["status"] == "completed", view
    first, second = view["attempts"]
    assert first["why"] == ("interrupted" if sig is signal.SIGTERM else "lease_expired"), first
    assert second["start_epoch"] >= 1, second
    cost = view["cost"]
    assert cost["lost_s"] > 0 and cost["lost_usd"] > 0, cost
    assert cost["training_s"] > cost["lost_s"], cost  # most of the training was kept
    assert_split_adds_up(cost)

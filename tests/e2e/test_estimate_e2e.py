"""The estimate before launch end to end: `laxai serve` as a real process, real workers, real tiny trainings.

A job on a data.yaml dataset nobody has trained on is a guess (its size unknown); its worker counts the
dataset's training images and records them; once it completed, the next job of the same configuration
is estimated from it (basis "history", 1 sample) at the seconds that job billed.
"""

from __future__ import annotations

import pytest

from orchestrator.stores.sqlite import SqliteJobStore
from tests.support.serve import ServeProcess, kill_workers, tiny_job, wait_for
from worker.datasets import write_synthetic

pytestmark = pytest.mark.slow

IMAGES = 12


@pytest.fixture
def home(tmp_path):
    yield tmp_path / "state"
    kill_workers(tmp_path / "state")


def test_a_completed_run_makes_the_next_jobs_estimate_history_with_its_image_count(home):
    # A dataset directory in the tenant's own data root ("e2e" is ServeProcess's tenant).
    write_synthetic(home / "data" / "e2e" / "boxes", IMAGES, 64)
    job = tiny_job(dataset="boxes", gpu_type="cpu")
    with ServeProcess(home, ESTIMATE_CACHE_SECONDS=0) as serve, serve.client() as client:
        first = client.post("/orchestrate", json=job).json()
        assert first["estimate"]["basis"] == "guess" and first["estimate"]["samples"] == 0
        view = wait_for(client, [first["task_id"]])[first["task_id"]]
        assert view["status"] == "completed", view
        second = client.post("/orchestrate", json=job).json()
        client.post(f"/jobs/{second['task_id']}/cancel")  # nothing more to learn from it

    store = SqliteJobStore(home / "laxai.db")
    try:
        assert store.get(first["task_id"]).dataset_images == IMAGES  # counted and recorded by the worker
    finally:
        store.close()
    estimate, cost = second["estimate"], view["cost"]
    assert estimate["basis"] == "history" and estimate["samples"] == 1 and estimate["images"] == IMAGES
    assert estimate["gpu_type"] == "cpu"
    # One run of the same configuration: its training and its overhead, i.e. what it billed (nothing lost).
    assert estimate["seconds"] == pytest.approx(cost["training_s"] + cost["overhead_s"], abs=0.2)
    assert estimate["seconds"] == pytest.approx(cost["billed_seconds"], abs=0.2)
    assert estimate["low_usd"] < estimate["usd"] < estimate["high_usd"]

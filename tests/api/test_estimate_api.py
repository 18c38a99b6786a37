"""The estimate before launch over real HTTP: in the submit response, in GET /status and /jobs, and from
``laxai submit`` (a real CLI process against the running service). Real SQLite, no dispatcher."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orchestrator.config import load_settings
from orchestrator.domain.job import CostSummary, Job
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.serve import ServiceThread

LAXAI = str(Path(sys.executable).parent / "laxai")
TOKEN = "tok-est-123456"


def body(dataset: str = "synthetic:64", size: int = 96, epochs: int = 2) -> dict:
    return {"training_params": {"epochs": epochs}, "model_params": {"architecture": "yolo11n", "input_size": size},
            "dataset": dataset, "gpu_type": "cpu"}


@pytest.fixture
def service(tmp_path):
    # No cache: each submit sees the history as it is (the cache has its own test below).
    settings = load_settings(LAXAI_HOME=tmp_path / "home", LAXAI_API_TOKENS=f"{TOKEN}:team-a",
                             ESTIMATE_CACHE_SECONDS=0)
    with ServiceThread(settings, dispatch=False) as svc:
        yield svc


@pytest.fixture
def client(service):
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {TOKEN}"}) as made:
        yield made


def completed_run(service, training: float, overhead: float, size: int = 96) -> Job:
    """A completed job of the test's shape in the service's store, as a worker would have left it."""
    spec = JobSpec.model_validate({"tenant_id": "team-a", **body(size=size)})
    cost = CostSummary(billed_seconds=training + overhead, gpu_type="cpu", training_s=training, overhead_s=overhead)
    job = Job(tenant_id="team-a", spec=spec, status=JobStatus.COMPLETED, cost=cost, dataset_images=64)
    return service.runtime.backend.store.create(job)[0]


def test_submit_and_status_carry_the_estimate(client):
    submitted = client.post("/orchestrate", json=body())
    assert submitted.status_code == 202, submitted.text
    estimate = submitted.json()["estimate"]
    assert estimate["basis"] == "prior" and estimate["samples"] == 0
    assert estimate["gpu_type"] == "cpu" and estimate["images"] == 64
    assert 0 < estimate["low_usd"] < estimate["usd"] < estimate["high_usd"] and estimate["seconds"] > 0
    task = submitted.json()["task_id"]
    assert client.get("/status", params={"task_id": task}).json()["estimate"] == estimate
    assert client.get(f"/jobs/{task}").json()["estimate"] == estimate
    assert [j["estimate"] for j in client.get("/jobs").json()["jobs"]] == [estimate]
    assert "EstimateView" in client.get("/openapi.json").json()["components"]["schemas"]


def test_completed_runs_of_the_same_shape_become_the_basis(service, client):
    completed_run(service, training=12.8, overhead=5.0)  # 0.1 s per image-epoch, 5 s per execution
    completed_run(service, training=12.8, overhead=5.0, size=128)  # another input size: not alike
    estimate = client.post("/orchestrate", json=body(dataset="synthetic:128", epochs=3)).json()["estimate"]
    assert estimate["basis"] == "history" and estimate["samples"] == 1
    assert estimate["seconds"] == pytest.approx(0.1 * 128 * 3 + 5.0, abs=0.1)


def test_the_history_is_cached_for_estimate_cache_seconds(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path / "cached", LAXAI_API_TOKENS=f"{TOKEN}:team-a",
                             ESTIMATE_CACHE_SECONDS=3600)
    with ServiceThread(settings, dispatch=False) as service, \
            httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        estimator = service.runtime.jobs.estimates
        first = client.post("/orchestrate", json=body()).json()["estimate"]
        completed_run(service, training=12.8, overhead=5.0)
        again = [client.post("/orchestrate", json=body()).json()["estimate"] for _ in range(5)]
        assert estimator.queries == 1  # one store query for six submissions of one shape
        assert first["basis"] == "prior" and {e["basis"] for e in again} == {"prior"}  # the cached answer


def test_laxai_submit_prints_the_estimate_on_stderr_and_only_the_task_id_on_stdout(service):
    env = {"PATH": str(Path(sys.executable).parent), "LAXAI_URL": service.url, "LAXAI_TOKEN": TOKEN,
           "LAXAI_HOME": str(Path(service.runtime.settings.LAXAI_HOME))}
    done = subprocess.run([LAXAI, "submit", "--epochs", "2", "--imgsz", "96", "--dataset", "synthetic:64", "--gpu",
                           "cpu", "--arch", "yolo11n"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    task = done.stdout.strip()
    assert len(task) == 36 and "\n" not in task  # stdout is the task id alone: TASK=$(laxai submit ...)
    assert "Estimate: \u2248" in done.stderr and "on cpu" in done.stderr
    assert "rough guess, no similar runs yet" in " ".join(done.stderr.split())

"""No silent CPU, end to end: `laxai serve --backend gcp` on the emulators with REQUIRE_GPU=1.

The one-laptop gcp mode (Firestore and Pub/Sub emulators, LAXAI_LAUNCHER=local) on this
CPU-only machine, as a Cloud Run job on a machine whose driver torch cannot use would be:
the worker must fail its attempt with ``gpu_unavailable`` within seconds of starting,
before any dataset work, and never train on the CPU.
"""

from __future__ import annotations

import os
import time

import pytest
import torch

from orchestrator.domain.job import EndReason, Job
from tests.gcp_fixtures import GCP_PROJECT
from tests.support.serve import ServeProcess, kill_workers, tiny_job, wait_for

pytestmark = [pytest.mark.gcp, pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")]


@pytest.fixture
def serve_gcp(tmp_path, clean_firestore, pubsub_names, pubsub_emulator):
    home = tmp_path / "state"
    process = ServeProcess(
        home, serve_args=("--backend", "gcp"),
        FIRESTORE_EMULATOR_HOST=os.environ["FIRESTORE_EMULATOR_HOST"], PUBSUB_EMULATOR_HOST=pubsub_emulator,
        GOOGLE_CLOUD_PROJECT=GCP_PROJECT, TRAINING_TOPIC=pubsub_names.topic,
        TRAINING_SUBSCRIPTION=pubsub_names.subscription, DEAD_LETTER_TOPIC=pubsub_names.dead_letter_topic,
        LAXAI_LAUNCHER="local", REQUIRE_GPU="1", YOLO_DEVICE="",
    )
    yield process.start()
    process.stop()
    kill_workers(home)


def test_a_worker_without_a_gpu_fails_gpu_unavailable_within_seconds_and_never_trains(serve_gcp, firestore_client):
    with serve_gcp.client() as client:
        submitted = client.post("/orchestrate", json=tiny_job(custom_name="needs-a-gpu"))
        assert submitted.status_code == 202, submitted.text
        task = submitted.json()["task_id"]
        view = wait_for(client, [task], timeout=180)[task]
        assert view["status"] == "failed", view
        assert view["error"]["reason"] == "gpu_unavailable"
        message = view["error"]["message"]
        assert "no CUDA device is visible" in message and "no NVIDIA driver found" in message
        assert f"torch {torch.__version__}" in message
        assert [a["why"] for a in view["attempts"]] == ["gpu_unavailable"]
        assert view["progress"]["epoch"] == 0 and view["metrics"] == {}
        assert view["cost"]["billed_seconds"] == 0  # the attempt never started: nothing billed
        time.sleep(3)  # not retried: another machine of the same image would have no GPU either
        assert len(client.get("/status", params={"task_id": task}).json()["attempts"]) == 1
        assert client.get("/healthz").status_code == 200

    job = Job.model_validate(firestore_client.collection("training_jobs").document(task).get().to_dict()["job"])
    attempt = job.attempts[0]
    assert attempt.end_reason is EndReason.GPU_UNAVAILABLE and attempt.started_at is None
    # From the claim (the worker starts right after) to the failure: seconds, not a training run.
    took = (attempt.ended_at - attempt.claimed_at).total_seconds()
    assert took < 45, f"failed {took:.1f} s after the claim"

    # Never trained: no run directory, no dataset made, no training line in the worker's log.
    home = serve_gcp.home
    assert not (home / "runs" / task).exists()
    log = (home / "logs" / f"{task}.log").read_text()
    assert "REQUIRE_GPU is set but no CUDA device is visible" in log
    for trained in ("training call", "first training batch", "Epoch"):
        assert trained not in log, log[-2000:]

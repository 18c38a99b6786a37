"""One-laptop gcp mode: `laxai serve --backend gcp` on the emulators, workers as local subprocesses.

Firestore holds the jobs and the model registry, Pub/Sub carries the wake-ups,
and LAXAI_LAUNCHER=local starts real workers (they inherit the emulator
variables) that train real tiny YOLO models. Checkpoints stay under LAXAI_HOME
(no ARTIFACT_BUCKET).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.domain.job import Attempt, Job
from tests.gcp_fixtures import GCP_PROJECT
from tests.support.serve import ServeProcess, kill_workers, tiny_job, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.gcp]

FINAL_METRICS = {"precision", "recall", "mAP50", "mAP50-95"}


@pytest.fixture
def laptop(tmp_path, clean_firestore, pubsub_names, pubsub_emulator):
    """serve(**env) -> a started `laxai serve --backend gcp` on the emulators."""
    home = tmp_path / "state"
    started: list[ServeProcess] = []

    def serve(**env) -> ServeProcess:
        process = ServeProcess(
            home, serve_args=("--backend", "gcp"),
            FIRESTORE_EMULATOR_HOST=os.environ["FIRESTORE_EMULATOR_HOST"], PUBSUB_EMULATOR_HOST=pubsub_emulator,
            GOOGLE_CLOUD_PROJECT=GCP_PROJECT, TRAINING_TOPIC=pubsub_names.topic,
            TRAINING_SUBSCRIPTION=pubsub_names.subscription, DEAD_LETTER_TOPIC=pubsub_names.dead_letter_topic,
            LAXAI_LAUNCHER="local", YOLO_DEVICE="cpu", PROGRESS_INTERVAL="0.5", **env,
        )
        started.append(process.start())
        return process

    yield serve
    for process in started:
        process.stop()
    kill_workers(home)


def stored(firestore_client, collection: str, doc: str) -> dict:
    snapshot = firestore_client.collection(collection).document(doc).get()
    assert snapshot.exists, f"{collection}/{doc} is not in Firestore"
    return snapshot.to_dict()


def test_a_tiny_job_trains_end_to_end_on_the_emulators(laptop, firestore_client):
    serve = laptop()
    with serve.client() as client:
        assert client.get("/healthz").json() == {"status": "ok", "backend": "gcp"}
        submitted = client.post("/orchestrate", json=tiny_job(custom_name="laptop-run"))
        assert submitted.status_code == 202, submitted.text
        task = submitted.json()["task_id"]
        view = wait_for(client, [task])[task]
        assert view["status"] == "completed", (view, serve.log.read_text()[-3000:])
        assert set(view["metrics"]) >= FINAL_METRICS
        assert [a["why"] for a in view["attempts"]] == ["completed"]
        assert Path(view["artifacts"]["best_checkpoint"]).is_file()
        models = client.get("/models").json()["models"]
        assert [(m["name"], m["version"], m["task_id"]) for m in models] == [("laptop-run", 1, task)]

    # The truth is in Firestore: the job document and the registry entry.
    document = stored(firestore_client, "training_jobs", task)
    assert document["status"] == "completed" and document["job"]["metrics"] == view["metrics"]
    entry = stored(firestore_client, "model_registry", task)
    assert (entry["name"], entry["version"]) == ("laptop-run", 1)


def attempts_of(firestore_client, task: str) -> list[Attempt]:
    return Job.model_validate(stored(firestore_client, "training_jobs", task)["job"]).attempts


def test_a_job_longer_than_the_task_cap_continues_and_completes(laptop, firestore_client):
    """TASK_TIMEOUT is sized from a calibration run on this machine: an execution has time for about as
    many epochs as the calibration run had (so it always finishes one, even at a third of the speed),
    and the job needs about four executions' worth (so it continues, even at twice the speed)."""
    calibration_epochs, dataset = 8, "synthetic:16"
    serve = laptop()
    with serve.client() as client:
        task = client.post("/orchestrate", json=tiny_job(training_params={"epochs": calibration_epochs},
                                                         dataset=dataset)).json()["task_id"]
        assert wait_for(client, [task])[task]["status"] == "completed"
    serve.stop()
    (attempt,) = attempts_of(firestore_client, task)
    startup = (attempt.started_at - attempt.claimed_at).total_seconds()  # launch + imports + set-up
    run = (attempt.ended_at - attempt.started_at).total_seconds()  # trainer set-up + epochs + final steps
    margin = 1.0
    task_timeout = round(startup + margin + run + 0.25 * startup + 1, 1)

    epochs = 4 * calibration_epochs
    serve = laptop(TASK_TIMEOUT=str(task_timeout), TASK_TIMEOUT_MARGIN=str(margin))
    with serve.client() as client:
        task = client.post("/orchestrate", json=tiny_job(training_params={"epochs": epochs}, dataset=dataset,
                                                         custom_name="long-run")).json()["task_id"]
        view = wait_for(client, [task], timeout=600)[task]
        detail = f"TASK_TIMEOUT={task_timeout} (startup {startup:.1f} s, run {run:.1f} s): {view['attempts']}"
        assert view["status"] == "completed", detail
        whys = [a["why"] for a in view["attempts"]]
        assert len(whys) >= 2 and whys[-1] == "completed" and set(whys[:-1]) == {"continuation"}, detail
        assert view["progress"]["epoch"] == view["progress"]["total_epochs"] == epochs, detail
        assert set(view["metrics"]) >= FINAL_METRICS
        models = client.get("/models", params={"name": "long-run"}).json()["models"]
        assert [(m["version"], m["task_id"]) for m in models] == [(1, task)]

    attempts = attempts_of(firestore_client, task)
    for before, after in zip(attempts, attempts[1:]):
        assert after.start_epoch == before.end_epoch > before.start_epoch, detail  # resumed where it stopped
    assert attempts[-1].end_epoch == epochs
    assert Job.model_validate(stored(firestore_client, "training_jobs", task)["job"]).recoveries == 0

"""The worker end to end: real tiny trainings in real subprocesses against a real SQLite store.

Each test claims a job like the dispatcher does, runs ``python -m worker`` and
checks the one closing transition it wrote (or that it wrote nothing).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.domain.job import EndReason, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import request_cancel, requeue

FINAL_METRICS = {"precision", "recall", "mAP50", "mAP50-95"}
# Long enough epochs (96 images, ~1-2 s each here) that a test reacts within the epoch after the first.
LONGER = "synthetic:96"


@pytest.mark.slow
def test_completes_with_metrics_checkpoints_registry_and_cost(harness):
    task_id = harness.submit(epochs=2)
    code, worker = harness.run(task_id, 1, OMP_DISPLAY_ENV="VERBOSE")  # libgomp prints its settings as torch loads it
    assert code == 0, worker.tail()
    assert worker.network_attempts() == []  # no font, weights or analytics downloads
    # OpenMP's idle threads sleep (worker/openmp.py): set before torch loaded libgomp (its default spins 300000).
    assert "GOMP_SPINCOUNT = '0'" in worker.log.read_text(errors="replace"), worker.tail()

    job = harness.job(task_id)
    assert job.status is JobStatus.COMPLETED, worker.tail()
    assert set(job.metrics) == FINAL_METRICS
    assert all(isinstance(v, float) for v in job.metrics.values())
    assert job.error is None and job.lease is None and job.finished_at is not None

    (attempt,) = job.attempts
    assert attempt.end_reason is EndReason.COMPLETED
    assert attempt.device == "cpu" and attempt.start_epoch == 0 and attempt.end_epoch == 2
    assert job.progress.epoch == job.progress.total_epochs == 2
    assert job.progress.progress_percent == 100.0
    assert [(r.epoch, r.attempt) for r in job.epochs] == [(1, 1), (2, 1)]  # the curves' rows

    artifacts = harness.backend.artifacts
    assert artifacts.exists(task_id, "best.pt") and artifacts.exists(task_id, "last.pt")
    assert job.artifacts.best_checkpoint == artifacts.uri(task_id, "best.pt")
    assert job.artifacts.last_checkpoint == artifacts.uri(task_id, "last.pt")
    assert Path(job.artifacts.log).is_file()
    assert Path(job.artifacts.wandb_run).is_dir()  # the offline W&B run, ready for `wandb sync`

    (entry,) = harness.backend.registry.list("acme")
    assert (entry.name, entry.version, entry.task_id) == ("acme-yolov8n", 1, task_id)
    assert entry.checkpoint == job.artifacts.best_checkpoint and entry.metrics == job.metrics
    assert (job.artifacts.registry_name, job.artifacts.registry_version) == ("acme-yolov8n", 1)

    assert job.cost.billed_seconds > 0
    assert job.cost.gpu_type == "cpu"  # trained on the CPU ...
    assert job.cost.estimate_gpu_type == "nvidia-l4" and job.cost.estimate_usd > 0  # ... priced on the L4 too

    kinds = [e.kind for e in harness.events(task_id)]
    assert kinds[:3] == ["created", "status:running", "worker_started"]
    assert kinds[-1] == "status:completed"
    assert kinds.count("progress") >= 2  # at least one per epoch
    epoch_ends = [e.job.progress for e in harness.events(task_id)
                  if e.kind == "progress" and "done" in e.job.progress.message]
    assert [p.epoch for p in epoch_ends] == [1, 2]


@pytest.mark.slow
def test_cancel_during_training_keeps_a_resumable_checkpoint(harness):
    task_id = harness.submit(dataset=LONGER, epochs=3)
    worker = harness.start(task_id, 1)
    harness.wait_until(task_id, lambda j: j.progress.epoch >= 1, worker)

    asked = time.monotonic()
    assert harness.store.update(task_id, lambda j: request_cancel(j, "U123", utcnow()), kind="cancel")
    assert worker.wait() == 0, worker.tail()
    assert time.monotonic() - asked < 20, "cancel took too long"

    job = harness.job(task_id)
    assert job.status is JobStatus.CANCELLED, worker.tail()
    (attempt,) = job.attempts
    assert attempt.end_reason is EndReason.CANCELLED and attempt.detail == "cancelled by U123"
    assert 1 <= attempt.end_epoch < 3
    assert job.artifacts.last_checkpoint == harness.backend.artifacts.uri(task_id, "last.pt")

    ckpt = harness.inspect_checkpoint(Path(job.artifacts.last_checkpoint))
    assert ckpt["optimizer"] is True  # resumable: the optimizer state was not stripped
    assert ckpt["epoch"] >= 0 and ckpt["epoch"] + 1 == attempt.end_epoch
    assert ckpt["epochs"] == 3


@pytest.mark.slow
def test_sigterm_requeues_and_the_next_attempt_resumes(harness):
    task_id = harness.submit(dataset=LONGER, epochs=3)
    worker = harness.start(task_id, 1)
    harness.wait_until(task_id, lambda j: j.progress.epoch >= 1, worker)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.tail()

    job = harness.job(task_id)
    assert job.status is JobStatus.QUEUED, worker.tail()
    (first,) = job.attempts
    assert first.end_reason is EndReason.INTERRUPTED and "SIGTERM" in first.detail
    assert first.lost_seconds is not None and 0 <= first.lost_seconds < 60
    assert 1 <= first.end_epoch < 3
    assert job.recoveries == 1

    # The dispatcher claims it again; the new execution, on a machine without the old run
    # directory, continues after the checkpointed epoch from the artifact store's last.pt.
    shutil.rmtree(harness.home / "runs" / task_id)
    assert harness.claim(task_id) == 2
    resumed_from = len(harness.store.changes(0, limit=10_000))
    code, worker = harness.run(task_id, 2)
    assert code == 0, worker.tail()

    job = harness.job(task_id)
    assert job.status is JobStatus.COMPLETED, worker.tail()
    second = job.attempts[1]
    assert second.start_epoch == first.end_epoch >= 1
    assert second.end_reason is EndReason.COMPLETED and second.end_epoch == 3
    assert job.progress.epoch == 3
    assert "Resuming training" in worker.tail(400)  # Ultralytics itself resumed, not a fresh run
    assert worker.network_attempts() == []
    # Only the remaining epochs were trained in the second attempt.
    done = [e.job.progress.epoch for e in harness.events(task_id, resumed_from)
            if e.kind == "progress" and "done" in e.job.progress.message]
    assert done == list(range(first.end_epoch + 1, 4))
    assert job.cost.billed_seconds == pytest.approx(first.billed_seconds + second.billed_seconds, abs=0.01)
    assert set(job.metrics) == FINAL_METRICS
    # The curves' rows: one per epoch across both attempts, each with the attempt that ran it (a redone
    # epoch's row replaced), every figure there; they rode on progress writes, none came on its own.
    assert [(r.epoch, r.attempt) for r in job.epochs] == [(e, 1 if e <= first.end_epoch else 2) for e in (1, 2, 3)]
    assert all(None not in (r.box, r.cls, r.dfl, r.val_box, r.map50, r.map50_95) for r in job.epochs)
    events = harness.events(task_id)
    assert {e.kind for prev, e in zip(events, events[1:]) if e.job.epochs != prev.job.epochs} == {"progress"}


@pytest.mark.slow
def test_training_timeout_fails_the_job(harness):
    task_id = harness.submit(epochs=3)
    code, worker = harness.run(task_id, 1, TRAINING_TIMEOUT="3")
    assert code == 0, worker.tail()

    job = harness.job(task_id)
    assert job.status is JobStatus.FAILED, worker.tail()
    assert job.error.reason == "timeout" and "TRAINING_TIMEOUT=3" in job.error.message
    assert job.attempts[0].end_reason is EndReason.TIMEOUT
    assert job.cost.billed_seconds >= 3


@pytest.mark.slow
def test_task_timeout_requeues_as_a_continuation_and_wakes_the_dispatcher(harness):
    task_id = harness.submit(epochs=3)
    code, worker = harness.run(task_id, 1, TASK_TIMEOUT="4", TASK_TIMEOUT_MARGIN="2")
    assert code == 0, worker.tail()

    job = harness.job(task_id)
    assert job.status is JobStatus.QUEUED, worker.tail()
    assert job.attempts[0].end_reason is EndReason.CONTINUATION
    assert job.recoveries == 0  # planned continuations are not counted as losses
    messages = harness.backend.queue.pull(max_messages=10, timeout=1)
    assert [(m.task_id, m.attributes.get("reason")) for m in messages] == [(task_id, "continuation")]

    # A second execution that again finishes no epoch before the cap would loop for ever: it fails instead.
    assert harness.claim(task_id) == 2
    code, worker = harness.run(task_id, 2, TASK_TIMEOUT="4", TASK_TIMEOUT_MARGIN="2")
    assert code == 0, worker.tail()
    job = harness.job(task_id)
    assert job.status is JobStatus.FAILED and job.error.reason == "task_timeout", worker.tail()
    assert "TASK_TIMEOUT" in job.error.message


@pytest.mark.slow
def test_taken_over_attempt_stops_without_writing(harness):
    task_id = harness.submit(dataset=LONGER, epochs=3)
    worker = harness.start(task_id, 1)
    harness.wait_until(task_id, lambda j: j.progress.epoch >= 1, worker)

    # The dispatcher decided the worker was lost and started attempt 2.
    rates = harness.settings.rates("cpu")
    assert harness.store.update(task_id, lambda j: requeue(j, 1, EndReason.LEASE_EXPIRED, utcnow(), rates, 3),
                                kind="status:queued")
    assert harness.claim(task_id) == 2
    before = harness.job(task_id)
    cursor = harness.store.last_cursor()

    assert worker.wait() == 3, worker.tail()
    assert harness.events(task_id, cursor) == []  # not one write after the take-over
    assert harness.job(task_id) == before
    assert "no longer current" in worker.tail()
    assert harness.backend.registry.list("acme") == []


@pytest.mark.slow
def test_training_error_fails_with_a_message_and_the_traceback_tail(harness):
    import torch

    # A checkpoint the safe loader accepts (plain data) but that holds no model: Ultralytics fails on it.
    weights = harness.data_root / "no-model.pt"
    torch.save({"model": "not a model", "epoch": -1}, weights)
    task_id = harness.submit(model_params={"architecture": "yolov8n", "input_size": 64, "weights": str(weights)})
    code, worker = harness.run(task_id, 1)
    assert code == 0, worker.tail()

    job = harness.job(task_id)
    assert job.status is JobStatus.FAILED, worker.tail()
    assert job.error.reason == "training_error" and job.error.message
    assert 0 < len(job.error.tail) <= 15
    assert not any(line.strip().startswith("File ") for line in job.error.tail)  # frames stay in the log
    assert "Traceback (most recent call last)" in worker.tail(400)
    assert any(line.startswith(job.error.message.split(":")[0]) for line in job.error.tail)  # the exception line
    assert job.attempts[0].end_reason is EndReason.FAILED
    assert job.progress.message.startswith("Failed: ")


def test_worker_for_an_attempt_that_is_not_current_exits_at_once(harness):
    task_id = harness.submit()
    cursor = harness.store.last_cursor()
    code, worker = harness.run(task_id, 2)
    assert code == 3, worker.tail()
    assert harness.events(task_id, cursor) == []


def test_bad_dataset_fails_with_dataset_error(harness):
    broken = harness.data_root / "broken"
    broken.mkdir()
    (broken / "data.yaml").write_text("train: images/train\nnames: [a]\n")  # no val split, no images
    task_id = harness.submit(dataset="broken")  # relative: inside the tenant's own data root
    code, worker = harness.run(task_id, 1)
    assert code == 0, worker.tail()
    job = harness.job(task_id)
    assert job.status is JobStatus.FAILED
    assert job.error.reason == "dataset_error" and job.error.message.startswith("dataset broken: ")
    assert "train: 'images/train' does not exist inside the dataset's data root" in job.error.message


def test_worker_needs_a_task_id_and_attempt():
    env = {k: v for k, v in os.environ.items() if k not in ("TASK_ID", "ATTEMPT")}
    result = subprocess.run([sys.executable, "-m", "worker"], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2 and "--task-id" in result.stderr

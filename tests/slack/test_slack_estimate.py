"""The estimate before launch in Slack: the /train ack and the job's card, over signed HTTP requests to the
running app, the card posted by the notifier to the fake Slack. Once per backend (SQLite, emulators)."""

from __future__ import annotations

import json

from orchestrator.domain.job import CostSummary, Job
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from tests.slack.slack_env import TEAM

COMMAND = "epochs=3 imgsz=96 arch=yolo11n dataset=synthetic:128 gpu=cpu name=estimated"


def completed_run(service, training: float, overhead: float) -> None:
    """A completed job of the command's shape (0.1 s per image-epoch when ``training`` is 12.8)."""
    spec = JobSpec.model_validate({"tenant_id": TEAM, "dataset": "synthetic:64", "gpu_type": "cpu",
                                   "training_params": {"epochs": 2},
                                   "model_params": {"architecture": "yolo11n", "input_size": 96}})
    cost = CostSummary(billed_seconds=training + overhead, gpu_type="cpu", training_s=training, overhead_s=overhead)
    service.store.create(Job(tenant_id=TEAM, spec=spec, status=JobStatus.COMPLETED, cost=cost, dataset_images=64))


def card_text(service, task_id: str) -> str:
    fake = service.fake
    found = fake.wait_for(lambda: fake.by_metadata(task_id, "card"), timeout=30, what=f"card of {task_id}")
    return json.dumps(fake.message(found[0]["channel"], found[0]["ts"])["blocks"], ensure_ascii=False)


def test_the_ack_and_the_card_show_the_estimate_and_its_basis(make_inproc):
    service = make_inproc(ESTIMATE_CACHE_SECONDS="0")
    first = service.sender.command(COMMAND)
    assert first.status == 200
    ack = first.json()["text"]
    assert "Estimate: \u2248" in ack and "on cpu" in ack and "rough guess, no similar runs yet" in ack
    (job,) = service.store.list(limit=10)
    assert job.estimate is not None and job.estimate.basis == "prior"
    assert "rough guess, no similar runs yet" in card_text(service, job.task_id)

    completed_run(service, training=12.8, overhead=5.0)
    second = service.sender.command(COMMAND.replace("name=estimated", "name=estimated-again"))
    ack = second.json()["text"]
    # 0.1 s x 128 images x 3 epochs + 5 s: about 43 s.
    assert "Estimate: \u2248 43 s" in ack and "from 1 similar run" in ack, ack
    newest = next(j for j in service.store.list(limit=10) if j.spec.custom_name == "estimated-again")
    assert newest.estimate.basis == "history" and newest.estimate.samples == 1
    card = card_text(service, newest.task_id)
    assert "Estimate: \u2248 43 s" in card and "from 1 similar run" in card

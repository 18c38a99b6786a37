"""A real worker registers its model with where it came from and the best earlier version to compare with
(worker/results.py, worker/baseline.py): one tiny training in a real subprocess on a real SQLite store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.domain.job import CostSummary, utcnow
from orchestrator.domain.status import JobStatus
from orchestrator.registry.base import ModelEntry


@pytest.mark.slow
def test_the_completed_run_carries_its_baseline(harness):
    earlier = harness.submit(epochs=1)  # an earlier run of the same name, finished with a cost
    started = utcnow() - timedelta(hours=2)
    harness.store.update(earlier, lambda j: j.model_copy(update={
        "status": JobStatus.COMPLETED, "started_at": started, "finished_at": started + timedelta(minutes=7),
        "cost": CostSummary(usd=0.75)}))
    name = "acme-yolov8n"  # what the worker names a run without custom_name
    harness.backend.registry.register(ModelEntry(tenant_id="acme", name=name, task_id=earlier, architecture="yolov8n",
                                                 checkpoint="/x/best.pt", metrics={"mAP50-95": 0.25, "mAP50": 0.5}))

    task_id = harness.submit(epochs=1)
    code, worker = harness.run(task_id, 1)
    assert code == 0, worker.tail()
    job = harness.job(task_id)
    assert job.status is JobStatus.COMPLETED and job.artifacts.registry_version == 2
    base = job.artifacts.baseline
    assert (base.version, base.task_id, base.map50_95, base.map50) == (1, earlier, 0.25, 0.5)
    assert base.cost_usd == 0.75 and base.wall_seconds == 420
    entry = harness.backend.registry.get("acme", name, 2)
    assert (entry.source, entry.submitted_by, entry.channel) == ("api", None, None)
    assert entry.wandb_artifact.endswith(f":job-{task_id}")  # names this version, for a W&B alias later

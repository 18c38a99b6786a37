"""A Retry of a job stopped by its cost cap or a budget continues from that job's checkpoint
(``Job.resume_from``); a Retry of any other finished job starts over. Real SQLite store."""

from __future__ import annotations

import pytest

from orchestrator.backends import open_backend
from orchestrator.config import load_settings
from orchestrator.domain.cost_cap import budget_stop
from orchestrator.domain.job import Origin, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.transitions import claim, worker_started
from orchestrator.service import JobService

SPEC = JobSpec(tenant_id="t", max_cost_usd=1.0, training_params={"epochs": 3})


@pytest.fixture
def service(tmp_path):
    backend = open_backend(load_settings(LAXAI_HOME=tmp_path))
    yield JobService(backend)
    backend.close()


def stopped(service: JobService, checkpoint: str | None, resume_from: str | None = None) -> str:
    job, _ = service.submit(SPEC, Origin(), resume_from=resume_from)
    rates = service.settings.rates("cpu")
    artifacts = {"last_checkpoint": checkpoint} if checkpoint else None

    def stop(j):
        now = utcnow()
        running = worker_started(claim(j, now, 60), 1, now, 60, "cpu", 0)
        return budget_stop(running, 1, now, rates, artifacts=artifacts)

    assert service.store.update(job.task_id, stop).cancel.by == "budget"
    return job.task_id


def test_a_retry_of_a_budget_stop_resumes_and_one_of_a_users_cancel_starts_over(service):
    first = stopped(service, "file:///last.pt")
    again = service.retry("t", first)
    assert again.resume_from == first and again.retry_of == first

    bare = stopped(service, None, resume_from="earlier-task")  # stopped before its own first checkpoint
    assert service.retry("t", bare).resume_from == "earlier-task"

    job, _ = service.submit(SPEC, Origin())
    service.cancel("t", job.task_id, by="U1")
    assert service.retry("t", job.task_id).resume_from is None

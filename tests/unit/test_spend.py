"""Spend reports (orchestrator/domain/spend.py): the period's jobs of one tenant, four breakdowns, running jobs
counted up to now, and the period checked by name."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.domain.budget import window
from orchestrator.domain.errors import SpecError
from orchestrator.domain.job import Attempt, CostSummary, Job, Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.spend import NO_CHANNEL, NO_USER, actual_usd, report
from orchestrator.domain.status import JobStatus
from orchestrator.spend_reports import check_period

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=timezone.utc)  # a Wednesday


def job(usd: float, user: str | None = "U1", channel: str | None = "C1", arch: str = "yolo11n",
        gpu: str = "cpu", tenant: str = "t", created: datetime = NOW - timedelta(hours=1),
        status: JobStatus = JobStatus.COMPLETED) -> Job:
    spec = JobSpec(tenant_id=tenant, model_params={"architecture": arch})
    return Job(tenant_id=tenant, spec=spec, status=status, created_at=created,
               origin=Origin(source="slack" if user else "api", user=user, channel=channel),
               cost=CostSummary(usd=usd, billed_seconds=usd * 1000, gpu_type=gpu))


def test_a_month_of_one_tenant_four_ways():
    jobs = [job(1.0), job(2.0, user="U2"), job(0.5, user=None, channel=None, arch="yolov8n", gpu="nvidia-l4"),
            job(9.0, tenant="other"), job(7.0, created=NOW - timedelta(days=30)),
            job(0.0, status=JobStatus.QUEUED)]
    got = report("t", "month", window("month", NOW), jobs, now=NOW)
    assert got.total_usd == pytest.approx(3.5) and got.billed_jobs == 3 and got.jobs == 4
    assert [(line.key, line.usd, line.jobs) for line in got.by_user] == [("U2", 2.0, 1), ("U1", 1.0, 1),
                                                                        (NO_USER, 0.5, 1)]
    assert [(line.key, line.usd) for line in got.by_channel] == [("C1", 3.0), (NO_CHANNEL, 0.5)]
    assert [(line.key, line.jobs) for line in got.by_architecture] == [("yolo11n", 2), ("yolov8n", 1)]
    assert [(line.key, line.usd) for line in got.by_gpu_type] == [("cpu", 3.0), ("nvidia-l4", 0.5)]
    assert got.billed_seconds == pytest.approx(3500.0)
    assert got.start == datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_a_week_starts_on_monday_and_budgets_pass_through():
    monday = datetime(2026, 11, 16, tzinfo=timezone.utc)
    jobs = [job(1.0, created=monday + timedelta(minutes=1)), job(4.0, created=monday - timedelta(minutes=1))]
    budgets = [{"scope": "channel", "key": "C1", "usd": 5.0, "period": "week", "spent_usd": 1.0, "left_usd": 4.0}]
    got = report("t", "week", window("week", NOW), jobs, budgets, now=NOW)
    assert got.total_usd == pytest.approx(1.0) and got.budgets == budgets


def test_a_running_job_counts_up_to_now_at_its_rate():
    started = NOW - timedelta(seconds=100)
    running = job(0.01, status=JobStatus.RUNNING).model_copy(update={
        "attempts": [Attempt(number=1, claimed_at=started, started_at=started)],
        "cost": CostSummary(usd=0.01, usd_per_second=0.001, billed_seconds=10)})
    assert actual_usd(running, NOW) == pytest.approx(0.1)
    assert actual_usd(job(0.3), NOW) == 0.3  # finished: its stored cost


def test_the_period_is_checked_by_name():
    assert check_period(" Week ") == "week"
    with pytest.raises(SpecError) as caught:
        check_period("year")
    assert caught.value.errors[0].field == "period" and "week or month" in caught.value.errors[0].message
    with pytest.raises(ValueError):
        report("t", "year", window("month", NOW), [], now=NOW)

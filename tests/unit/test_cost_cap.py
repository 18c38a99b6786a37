"""The per-job cost cap and budget stops: the rule (orchestrator/domain/cost_cap.py), the worker's check at
checkpoints only (worker/stop.py), the closing transition, the budget pass's rule (orchestrator/budget_stops.py)
and the spec field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from orchestrator.budget_stops import stop_words, used_up
from orchestrator.domain.budget import Budget
from orchestrator.domain.cost import Rates
from orchestrator.domain.cost_cap import (
    BUDGET,
    budget_stop,
    cap_reached,
    cap_words,
    request_budget_stop,
    stopped_for_budget,
)
from orchestrator.domain.errors import parse_spec
from orchestrator.domain.errors import SpecError
from orchestrator.domain.job import CostSummary, Job, Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import claim, request_cancel, worker_started
from worker.stop import Budget as TimeBudget
from worker.stop import CostMeter, StopCheck, StopFlags, StopReason, TrainingStopped

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=timezone.utc)
RATES = Rates("cpu", 0, 4.0, 16.0)  # $0.000104 per second


def running(cap: float | None = 5.0, seconds: float = 100.0) -> Job:
    spec = JobSpec(tenant_id="t", max_cost_usd=cap, training_params={"epochs": 4})
    job = claim(Job(tenant_id="t", spec=spec, created_at=NOW), NOW, 60)
    return worker_started(job, 1, NOW + timedelta(seconds=seconds), 60, "cpu", 0, began=NOW)


def test_the_spec_field_is_bounded_and_named():
    assert JobSpec(tenant_id="t", max_cost_usd=5).max_cost_usd == 5.0
    assert JobSpec(tenant_id="t").max_cost_usd is None
    for bad in (0, -1, 100_001, float("inf"), "lots"):
        with pytest.raises(SpecError) as caught:
            parse_spec({"tenant_id": "t", "max_cost_usd": bad})
        assert [e.field for e in caught.value.errors] == ["max_cost_usd"], caught.value
    with pytest.raises(ValidationError):
        JobSpec(tenant_id="t", max_cost_usd=0)


def test_a_spec_without_a_cap_hashes_as_before_the_field_existed():
    job = Job(tenant_id="t", spec=JobSpec(tenant_id="t"))
    assert "max_cost_usd" not in job.spec.model_dump(exclude={"max_cost_usd"})
    capped = Job(tenant_id="t", spec=JobSpec(tenant_id="t", max_cost_usd=5))
    assert job.request_hash() != capped.request_hash()


def test_the_cap_rule_and_its_words():
    assert cap_reached(5.0, 5.0) and cap_reached(5.02, 5.0)
    assert not cap_reached(4.99, 5.0) and not cap_reached(1e9, None)
    assert cap_words(5.02, 5.0) == "stopped at the cost cap: $5.02 spent of $5.00"


def test_the_meter_prices_every_execution_from_its_process_start():
    meter = CostMeter(cap_usd=0.02, prior_seconds=100.0, process_started=1000.0, usd_per_second=RATES.per_second)
    assert meter.spent(now=1050.0) == pytest.approx(150 * RATES.per_second)
    assert not meter.reached(now=1050.0)
    assert meter.reached(now=1100.0)  # 200 s x $0.000104 = $0.0208
    assert not CostMeter(None, 1e9, 0.0, 1.0).reached(now=1.0)


def check(meter: CostMeter | None = None, flags: StopFlags | None = None) -> StopCheck:
    return StopCheck(flags or StopFlags(), TimeBudget(started=0.0, prior_seconds=0.0, training_timeout=1e9,
                                                      continue_after=None), meter)


def test_a_cost_stop_is_asked_only_at_a_checkpoint():
    over = CostMeter(cap_usd=1e-9, prior_seconds=10.0, process_started=0.0, usd_per_second=1.0)
    stop = check(over)
    stop.check()  # mid-epoch: carries on, the epoch being paid for is finished first
    assert stop.reason() is None
    with pytest.raises(TrainingStopped) as caught:
        stop.check(checkpoint=True)
    assert caught.value.reason is StopReason.BUDGET
    assert check(CostMeter(None, 10.0, 0.0, 1.0)).reason(checkpoint=True) is None


def test_a_budget_flag_stops_at_the_checkpoint_and_a_cancel_still_wins():
    flags = StopFlags()
    flags.set(StopReason.BUDGET, "stopped: tenant t's $1/month budget is used up ($1.20 spent)")
    assert check(flags=flags).reason() is None
    assert check(flags=flags).reason(checkpoint=True) is StopReason.BUDGET
    assert flags.budget_why.startswith("stopped: tenant t")
    flags.set(StopReason.CANCEL)
    assert check(flags=flags).reason(checkpoint=True) is StopReason.CANCEL


def test_budget_stop_ends_a_running_job_cancelled_by_budget_with_what_it_spent():
    job = running(cap=0.005)
    done = budget_stop(job, 1, NOW + timedelta(seconds=60), RATES)
    assert done.status is JobStatus.CANCELLED and done.cancel.by == BUDGET and stopped_for_budget(done)
    assert done.cost.usd == pytest.approx(60 * RATES.per_second)
    words = cap_words(done.cost.usd, 0.005)
    assert done.cancel.detail == words == done.attempts[-1].detail
    assert done.attempts[-1].end_reason.value == "cancelled"
    assert words in done.progress.message and done.finished_at is not None
    assert budget_stop(done, 1, NOW, RATES) is None  # finished: nothing more
    assert budget_stop(job, 2, NOW, RATES) is None  # not the live attempt


def test_a_budget_stop_uses_the_budget_words_and_a_users_cancel_stays_theirs():
    job = running()
    done = budget_stop(job, 1, NOW + timedelta(seconds=5), RATES, why="stopped: a budget ran out")
    assert done.cancel.detail == "stopped: a budget ran out"
    cancelling = request_cancel(job, "U1", NOW)
    theirs = budget_stop(cancelling, 1, NOW + timedelta(seconds=5), RATES)
    assert theirs.status is JobStatus.CANCELLED and theirs.cancel.by == "U1" and not stopped_for_budget(theirs)
    assert theirs.attempts[-1].detail == "cancelled by U1"


def test_request_budget_stop_marks_a_running_job_once():
    job = running()
    asked = request_budget_stop(job, "stopped: used up", NOW)
    assert asked.budget_stop.by == BUDGET and asked.budget_stop.detail == "stopped: used up"
    assert asked.status is JobStatus.RUNNING
    assert request_budget_stop(asked, "again", NOW) is None
    queued = Job(tenant_id="t", spec=JobSpec(tenant_id="t"))
    assert request_budget_stop(queued, "x", NOW) is None


def test_a_budget_is_used_up_by_actual_cost_only():
    budget = Budget(scope="channel", key="C1", usd=1.0, period="month")
    spec = JobSpec(tenant_id="t")

    def job(usd: float, channel: str = "C1", status=JobStatus.COMPLETED, created=NOW) -> Job:
        return Job(tenant_id="t", spec=spec, status=status, created_at=created,
                   origin=Origin(source="slack", channel=channel), cost=CostSummary(usd=usd))

    under = [job(0.6), job(5.0, channel="C2"), job(0.5, created=NOW - timedelta(days=40))]
    assert used_up(budget, under, NOW) is None  # another channel, another month
    queued = Job(tenant_id="t", spec=spec, origin=Origin(channel="C1"), created_at=NOW,
                 estimate={"seconds": 1, "usd": 9.0, "low_usd": 1, "high_usd": 9, "basis": "prior"})
    assert used_up(budget, [*under, queued], NOW) is None  # an estimate holds new jobs; it stops none
    assert used_up(budget, [*under, job(0.45)], NOW) == pytest.approx(1.05)
    assert stop_words(budget, 1.05) == "stopped: channel C1's $1.00/month budget is used up ($1.05 spent)"

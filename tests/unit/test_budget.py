"""Budgets, pure rule (orchestrator/domain/budget.py): parsing BUDGETS, period windows, which budgets apply,
and the spend rule that holds a job for approval."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from orchestrator.config import load_settings
from orchestrator.domain.budget import (
    Budget,
    applies,
    committed_usd,
    crossings,
    describe,
    left,
    merged,
    parse_budget,
    parse_budgets,
    spent,
    window,
)
from orchestrator.domain.job import CostSummary, Estimate, Job, Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=timezone.utc)  # a Wednesday


def job(usd_estimate: float | None = None, cost: float = 0.0, status: JobStatus = JobStatus.QUEUED,
        created: datetime = NOW, tenant: str = "T", channel: str | None = "C0123", user: str | None = "U0456") -> Job:
    estimate = None if usd_estimate is None else Estimate(seconds=60, usd=usd_estimate, low_usd=usd_estimate,
                                                          high_usd=usd_estimate, basis="prior")
    return Job(tenant_id=tenant, spec=JobSpec(tenant_id=tenant), status=status, created_at=created,
               origin=Origin(source="slack", channel=channel, user=user), estimate=estimate,
               cost=CostSummary(usd=cost))


def test_budgets_parse_from_the_settings_form():
    parsed = parse_budgets(["tenant:T=500/month", "channel:C0123=50/month", "user:U0456=$20.5/week"])
    assert [b.text() for b in parsed] == ["tenant:T=500/month", "channel:C0123=50/month", "user:U0456=20.5/week"]
    assert parsed[2] == Budget(scope="user", key="U0456", usd=20.5, period="week")


@pytest.mark.parametrize(("entry", "says"), [
    ("team:T=5/month", "scope must be tenant, channel or user"),
    ("tenant:T=5/year", "period must be week or month"),
    ("tenant:T=0/month", "more than 0"),
    ("tenant:T=five/month", "is not scope:key=USD/period"),
    ("tenant:T", "is not scope:key=USD/period"),
    ("channel:bad key=5/month", "key must be an id"),
    ("tenant:T=1e9/month", "is not scope:key=USD/period"),
    ("tenant:T=99999999/month", "at most"),
])
def test_a_bad_entry_says_what_is_allowed(entry, says):
    with pytest.raises(ValueError, match=says):
        parse_budget(entry)


def test_a_repeated_scope_and_key_is_refused():
    with pytest.raises(ValueError, match="given twice"):
        parse_budgets(["channel:C1=5/month", "channel:C1=9/week"])


def test_the_setting_parses_and_a_bad_value_fails_naming_budgets(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path, BUDGETS="tenant:T=500/month, channel:C0123=50/month")
    assert [b.text() for b in settings.BUDGETS] == ["tenant:T=500/month", "channel:C0123=50/month"]
    assert load_settings(LAXAI_HOME=tmp_path).BUDGETS == ()
    with pytest.raises(ValidationError) as caught:
        load_settings(LAXAI_HOME=tmp_path, BUDGETS="tenant:T=500/month,channel:C0123=50/fortnight")
    text = str(caught.value)
    assert "BUDGETS" in text and "week or month" in text and "fortnight" in text


def test_stored_budgets_override_the_settings_per_scope_and_key():
    base = parse_budgets(["tenant:T=500/month", "channel:C1=50/month"])
    stored = [Budget(scope="channel", key="C1", usd=80, period="week"), Budget(scope="user", key="U1", usd=5,
                                                                              period="week")]
    assert [b.text() for b in merged(base, stored)] == ["tenant:T=500/month", "channel:C1=80/week", "user:U1=5/week"]


def test_periods_are_utc_calendar_months_and_iso_weeks():
    assert window("month", NOW) == (datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc))
    assert window("month", datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))[1] == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert window("week", NOW) == (datetime(2026, 11, 16, tzinfo=timezone.utc), datetime(2026, 11, 23, tzinfo=timezone.utc))
    monday = datetime(2026, 11, 16, tzinfo=timezone.utc)
    assert window("week", monday)[0] == monday  # Monday 00:00 UTC opens the week
    assert window("week", monday - timedelta(microseconds=1))[0] == monday - timedelta(days=7)
    # Another zone's clock is read in UTC: Monday 01:00 in +02:00 is still Sunday in UTC.
    assert window("week", datetime(2026, 11, 16, 1, 0, tzinfo=timezone(timedelta(hours=2))))[0] == monday - timedelta(days=7)


def test_which_budgets_apply_to_a_job():
    a = job(1.0)
    assert applies(Budget(scope="tenant", key="T", usd=1, period="week"), a)
    assert applies(Budget(scope="channel", key="C0123", usd=1, period="week"), a)
    assert applies(Budget(scope="user", key="U0456", usd=1, period="week"), a)
    assert not applies(Budget(scope="tenant", key="other", usd=1, period="week"), a)
    assert not applies(Budget(scope="channel", key="C9", usd=1, period="week"), a)
    assert not applies(Budget(scope="channel", key="C0123", usd=1, period="week"), job(1.0, channel=None))


def test_what_a_job_counts_against_its_budgets():
    assert committed_usd(job(3.0, cost=0.0)) == 3.0  # queued: its estimate
    assert committed_usd(job(3.0, cost=1.0, status=JobStatus.RUNNING)) == 3.0  # cost so far + the rest
    assert committed_usd(job(3.0, cost=4.0, status=JobStatus.RUNNING)) == 4.0  # past its estimate: the cost
    assert committed_usd(job(3.0, cost=2.5, status=JobStatus.COMPLETED)) == 2.5  # finished: actual only
    assert committed_usd(job(3.0, cost=0.0, status=JobStatus.CANCELLED)) == 0.0
    assert committed_usd(job(3.0, status=JobStatus.AWAITING_APPROVAL)) == 0.0  # held jobs hold nobody else


def test_spend_sums_the_periods_jobs_of_the_budget():
    budget = Budget(scope="channel", key="C0123", usd=50, period="month")
    jobs = [job(10.0, cost=12.0, status=JobStatus.COMPLETED), job(5.0, cost=1.0, status=JobStatus.RUNNING),
            job(20.0), job(7.0, channel="C9"), job(9.0, created=datetime(2026, 10, 31, 23, 59, tzinfo=timezone.utc))]
    assert spent(budget, jobs, NOW) == 12.0 + 5.0 + 20.0
    assert left(budget, jobs, NOW) == 50 - 37.0
    assert left(Budget(scope="channel", key="C0123", usd=30, period="month"), jobs, NOW) == 0.0


def test_a_job_over_a_budget_is_held_naming_each_budget_it_would_cross():
    budgets = [Budget(scope="channel", key="C0123", usd=50, period="month"),
               Budget(scope="user", key="U0456", usd=20, period="week"),
               Budget(scope="tenant", key="T", usd=500, period="month")]
    history = [job(48.2, cost=48.2, status=JobStatus.COMPLETED, created=NOW - timedelta(days=10), user="U-other")]
    new = job(3.1)
    found = crossings(new, budgets, [*history, new], NOW)
    assert [(c.scope, c.key, c.spent_usd, c.estimate_usd, c.limit_usd) for c in found] == [
        ("channel", "C0123", 48.2, 3.1, 50.0)]
    assert describe(found[0]) == "channel C0123's $50.00/month budget: $48.20 spent + $3.10 estimated"
    assert crossings(job(1.8), budgets, history, NOW) == []  # 48.2 + 1.8 = 50: at the budget, not over it
    assert crossings(job(None), budgets, history, NOW) == []  # no estimate: nothing to add up
    both = crossings(job(21.0), budgets, history, NOW)
    assert {c.scope for c in both} == {"channel", "user"}


def test_api_tokens_may_be_admins_and_the_old_form_still_parses(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path, LAXAI_API_TOKENS="t1:team-a,t2:team-b:admin,t3:team-c:x")
    assert settings.api_tokens == {"t1": "team-a", "t2": "team-b", "t3": "team-c:x"}
    assert settings.admin_tokens == {"t2"}
    with pytest.raises(ValidationError, match="LAXAI_API_TOKENS"):
        load_settings(LAXAI_HOME=tmp_path, LAXAI_API_TOKENS="t1::admin")  # an admin of no tenant
    local = load_settings(LAXAI_HOME=tmp_path)  # no tokens: the generated local token is the operator's
    assert local.admin_tokens == set(local.api_tokens)

"""Cost caps and spend reports in Slack, over signed requests to the running app (once per backend: SQLite;
Firestore and Pub/Sub emulators): ``/train … max_cost=5`` stores the cap and a bad value is named,
``/train costs [week|month]`` answers with the team's spend four ways and its budgets, and the thread's
reply for a job stopped by its cap says what was spent."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.budgets import open_budgets
from orchestrator.domain.budget import Budget
from orchestrator.domain.cost import Rates
from orchestrator.domain.cost_cap import budget_stop
from orchestrator.domain.job import CostSummary, Job, Origin, Progress, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import claim, worker_started
from tests.slack.slack_env import ALICE, BOB, CHANNEL, TEAM

from bot import blocks


def billed(usd: float, user: str, arch: str) -> Job:
    spec = JobSpec(tenant_id=TEAM, model_params={"architecture": arch})
    return Job(tenant_id=TEAM, spec=spec, status=JobStatus.COMPLETED,
               origin=Origin(source="slack", user=user, team=TEAM, channel=CHANNEL),
               cost=CostSummary(usd=usd, billed_seconds=600, gpu_type="cpu"))


def test_max_cost_is_a_train_option_and_a_bad_value_is_named(make_inproc):
    service = make_inproc()
    bad = service.sender.command("epochs=1 max_cost=free")
    assert "max_cost" in bad.text and "USD above 0" in bad.text, bad.text
    assert service.store.list(limit=5) == []
    sent = service.sender.command("epochs=1 imgsz=64 dataset=synthetic:8 max_cost=5")
    assert sent.status == 200
    (job,) = service.store.list(limit=5)
    assert job.spec.max_cost_usd == 5.0


def test_train_costs_answers_with_the_spend_four_ways_and_the_budgets(make_inproc):
    service = make_inproc()
    for job in (billed(1.25, ALICE, "yolo11n"), billed(0.5, BOB, "yolov8n")):
        service.store.create(job)
    budgets = open_budgets(service.runtime.backend)
    try:
        budgets.set(Budget(scope="channel", key=CHANNEL, usd=5, period="month"), by="test")
    finally:
        budgets.close()

    month = service.sender.command("costs", user=BOB)
    assert month.status == 200
    text = month.text
    assert "Spend this month" in text and "$1.75" in text and "over 2 of 2 jobs" in text, text
    assert f"<@{ALICE}>: $1.25" in text and f"<@{BOB}>: $0.50" in text, text
    assert f"<#{CHANNEL}>: $1.75" in text and "`yolo11n`: $1.25" in text and "`cpu`: $1.75" in text, text
    assert f"channel <#{CHANNEL}>: $1.75 of $5/month" in text and "$3.25 left" in text, text
    assert "Spend this week" in service.sender.command("costs week").text
    bad = service.sender.command("costs year")
    assert "costs" in bad.text and "week or month" in bad.text, bad.text


def test_the_thread_says_a_capped_job_stopped_and_what_it_spent():
    spec = JobSpec(tenant_id=TEAM, max_cost_usd=0.005, training_params={"epochs": 3})
    now = utcnow()
    began = now - timedelta(seconds=60)
    job = claim(Job(tenant_id=TEAM, spec=spec, progress=Progress(total_epochs=3)), began, 60)
    job = worker_started(job, 1, began, 60, "cpu", 0)
    done = budget_stop(job, 1, now, Rates("cpu", 0, 4.0, 16.0))
    reply = blocks.final(done)
    assert "*Stopped* at epoch 0/3: stopped at the cost cap: $0.0062 spent of $0.0050" in reply.blocks[0]["text"]["text"]
    assert "Retry" in reply.text and "continues from it" in reply.text
    card = str(blocks.card(done).blocks)
    assert "Stopped: stopped at the cost cap" in card and "Cancelled by" not in card

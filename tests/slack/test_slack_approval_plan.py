"""The pure parts of approval in Slack: what a held job's thread still lacks (bot/plan.py), the request
and decision messages (bot/approval.py, checked against Block Kit's rules by the fake's validator),
and the ``/train budget`` grammar (bot/budget_command.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from orchestrator.domain.job import Approval, BudgetCrossing, Job
from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import validate_blocks, validate_view
from tests.slack import jobflow

from bot import approval, commands, plan
from bot.budget_command import BudgetList, BudgetRemove, BudgetSet
from bot.options import OptionErrors

CROSSING = BudgetCrossing(scope="channel", key="C0123", limit_usd=50, period="month", spent_usd=48.2,
                          estimate_usd=3.1)


def held(posted: dict[str, str] | None = None, **update) -> Job:
    job = jobflow.make_job()
    approval_ = Approval(budgets=[CROSSING], requested_at=datetime.now(timezone.utc))
    return job.model_copy(update={"status": JobStatus.AWAITING_APPROVAL, "approval": approval_,
                                  "notify": {"posted": posted or {}}, **update})


def decided(job: Job, decision: str, status: JobStatus, reason: str | None = None) -> Job:
    choice = job.approval.model_copy(update={"decision": decision, "decided_by": "U0ADMIN", "reason": reason})
    return job.model_copy(update={"status": status, "approval": choice})


def keys(job: Job) -> list[str]:
    return [step.key for step in plan.due(job)]


def test_a_held_job_owes_its_card_then_the_request_with_both_buttons():
    assert keys(held()) == ["card", "approval"]
    message = plan.render(held({"card": "1.0"}), "approval")
    text = message.blocks[0]["text"]["text"]
    assert ("Would cross channel <#C0123>'s $50/month budget: $48.20 spent + $3.10 estimated. "
            "An admin can approve it.") in text
    assert [e["action_id"] for e in message.blocks[-1]["elements"]] == ["laxai_approve", "laxai_reject"]
    assert validate_blocks(message.blocks) == []
    card = plan.render(held(), "card")
    assert "*Awaiting approval* \u00b7 over channel <#C0123>'s $50/month budget" in card.blocks[1]["text"]["text"]
    assert "laxai_cancel" in str(card.blocks[-1])  # its submitter may still cancel it


def test_an_approval_is_answered_and_the_request_loses_its_buttons():
    job = decided(held({"card": "1.0", "approval": "1.1"}), "approved", JobStatus.QUEUED)
    assert keys(job) == ["decision", "approval_closed"]
    closed = plan.render(job, "approval_closed")
    assert len(closed.blocks) == 1 and "*Approved* by <@U0ADMIN>" in closed.blocks[0]["text"]["text"]
    assert "Approved by <@U0ADMIN>" in plan.render(job, "decision").text
    done = job.model_copy(update={"notify": {"posted": {"card": "1", "approval": "2", "decision": "3",
                                                         "approval_closed": "2"}}})
    assert keys(done) == []
    # Finished before the notifier got to it: the answer still precedes the final reply.
    finished = job.model_copy(update={"status": JobStatus.COMPLETED})
    assert keys(finished) == ["decision", "final", "approval_closed"]


def test_a_rejection_is_the_final_reply_with_the_reason():
    job = decided(held({"card": "1.0", "approval": "1.1"}), "rejected", JobStatus.CANCELLED, reason="too <!here>")
    assert keys(job) == ["final", "approval_closed"]
    final = plan.render(job, "final").blocks[0]["text"]["text"]
    assert "*Rejected* by <@U0ADMIN>: too &lt;!here&gt;" in final and "never started" in final
    # Never shown: no request to close.
    assert keys(decided(held({"card": "1.0"}), "rejected", JobStatus.CANCELLED)) == ["final"]


def test_the_reject_form_is_valid_and_carries_the_job():
    job = held()
    view = approval.reject_view(job, "C0123", "1.0")
    assert validate_view(view) == []
    submitted = {**view, "state": {"values": {"reason": {"value": {"value": "  over the limit "}}}}}
    meta, reason = approval.submitted_reject(submitted)
    assert meta["task"] == job.task_id and meta["channel"] == "C0123" and reason == "over the limit"
    assert approval.submitted_reject({**view, "state": {"values": {}}})[1] == approval.DEFAULT_REASON


@pytest.mark.parametrize("text, expected", [
    ("budget", BudgetList()),
    ("budget set channel=C0123 50/month", BudgetSet("channel", "C0123", 50.0, "month")),
    ("budget set channel=<#C0123|general> 50/month", BudgetSet("channel", "C0123", 50.0, "month")),
    ("budget set user=<@U0456|bob> $20.5/week", BudgetSet("user", "U0456", 20.5, "week")),
    ("budget set tenant 500/month", BudgetSet("tenant", None, 500.0, "month")),
    ("budget remove channel", BudgetRemove("channel", None)),
])
def test_budget_commands_parse(text, expected):
    assert commands.parse(text) == expected


@pytest.mark.parametrize("text, field, words", [
    ("budget set channel=C0123 50/day", "period", "week or month"),
    ("budget set channel=C0123 0/month", "amount", "above 0"),
    ("budget set channel=C0123", "amount", "50/month"),
    ("budget set channel=#general 5/week", "channel", "Slack channel id"),
    ("budget set user 5/week", "user", "user id"),
    ("budget set team=T1 5/week", "scope", "tenant"),
    ("budget remove channel=C0123 5/week", "amount", "no amount"),
    ("budget grow", "budget", "not a budget action"),
])
def test_bad_budget_commands_name_the_field(text, field, words):
    with pytest.raises(OptionErrors) as raised:
        commands.parse(text)
    (error,) = raised.value.errors
    assert error.field == field and words in error.message

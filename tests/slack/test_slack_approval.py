"""Budgets and approval in Slack: ``/train budget`` (admins set and remove, anyone lists), a ``/train``
over a budget held with an approval request in its thread, Approve and Reject for admins only.

Signed requests to the app in-process (the real extension, the notifier posting to the fake Slack),
once per backend (SQLite; Firestore and Pub/Sub emulators). No dispatcher runs here, so an approved
job stays queued (tests/slack/test_slack_budget_e2e.py runs one to completion with a real worker).
"""

from __future__ import annotations

import json

from orchestrator.budgets import open_budgets
from orchestrator.domain.status import JobStatus
from tests.slack.slack_env import ADMIN, ALICE, BOB, CHANNEL

TINY = "epochs=2 imgsz=64 dataset=synthetic:16 arch=yolov8n"
BUDGET = "0.001"  # below any tiny job's estimate on the default GPU: the next /train is held


def text_of(message: dict | None) -> str:
    return json.dumps((message or {}).get("blocks") or [], ensure_ascii=False) + ((message or {}).get("text") or "")


def action_ids(message: dict) -> set[str]:
    return {e.get("action_id") for b in message.get("blocks") or [] for e in b.get("elements") or []}


def posted(service, task_id: str, key: str, timeout: float = 30.0) -> dict:
    """The message ``key`` of the job as Slack shows it now (after any edits)."""
    fake = service.fake
    found = fake.wait_for(lambda: fake.by_metadata(task_id, key), timeout=timeout, what=f"{key} of {task_id[:8]}")[0]
    return fake.message(found["channel"], found["ts"])


def wait_message(service, task_id: str, key: str, predicate, timeout: float = 30.0) -> dict:
    return service.fake.wait_for(lambda: (lambda m: m if predicate(m) else None)(posted(service, task_id, key)),
                                 timeout=timeout, what=f"{key} of {task_id[:8]} to change")


def ephemerals_since(service, count: int, user: str) -> list[dict]:
    return [e for e in service.fake.ephemerals[count:] if e["user"] == user]


def submit_held(service, name: str):
    before = {j.task_id for j in service.store.list(limit=100)}
    sent = service.sender.command(f"{TINY} name={name}", user=ALICE)
    assert sent.status == 200 and "Held for approval" in sent.text, sent.text
    assert f"Would cross channel <#{CHANNEL}>'s $0.0010/month budget: $0.00 spent + $" in sent.text, sent.text
    (job,) = [j for j in service.store.list(limit=100) if j.task_id not in before]
    assert job.status is JobStatus.AWAITING_APPROVAL and job.approval.budgets[0].key == CHANNEL
    return job


def test_budget_commands_are_for_admins_and_bad_input_names_the_field(make_inproc):
    service = make_inproc()
    refused = service.sender.command(f"budget set channel {BUDGET}/month", user=ALICE)
    assert "Only an admin" in refused.text
    bad = service.sender.command("budget set channel=C0TRAIN 50/day", user=ADMIN)
    assert "period" in bad.text and "week or month" in bad.text
    bad = service.sender.command("budget set channel=#general 50/month", user=ADMIN)
    assert "channel" in bad.text and "is not a Slack channel id" in bad.text
    bad = service.sender.command("budget set tenant=T0OTHER 50/month", user=ADMIN)
    assert "tenant" in bad.text and "only this workspace" in bad.text
    budgets = open_budgets(service.runtime.backend)
    assert budgets.list() == []

    done = service.sender.command(f"budget set channel=<#{CHANNEL}|training> 50/month", user=ADMIN)
    assert f"channel <#{CHANNEL}>'s budget is now *$50/month*" in done.text, done.text
    listed = service.sender.command("budget", user=ALICE)  # anyone may look
    assert f"channel <#{CHANNEL}>: *$50/month*" in listed.text and "$50.00 left" in listed.text, listed.text
    (change,) = budgets.audit()
    assert change.by == ADMIN and change.new.usd == 50 and change.old is None

    removed = service.sender.command(f"budget remove channel={CHANNEL}", user=ADMIN)
    assert "Removed" in removed.text and budgets.list() == []
    assert "No budgets are set" in service.sender.command("budget", user=ALICE).text


def test_a_job_over_budget_waits_and_only_an_admin_approves_it(make_inproc):
    service = make_inproc()
    assert "budget is now" in service.sender.command(f"budget set channel {BUDGET}/month", user=ADMIN).text
    job = submit_held(service, "held")

    card = posted(service, job.task_id, "card")
    assert "Awaiting approval" in text_of(card) and "an admin can approve it" in text_of(card)
    request = posted(service, job.task_id, "approval")
    assert request["thread_ts"] == card["ts"]
    assert "Would cross channel <#C0TRAIN>'s $0.0010/month budget" in text_of(request)
    assert action_ids(request) == {"laxai_approve", "laxai_reject"}

    seen = len(service.fake.ephemerals)
    for action in ("laxai_approve", "laxai_reject"):
        assert service.sender.click(request, action, user=BOB).status == 200
    notes = service.fake.wait_for(lambda: len(ephemerals_since(service, seen, BOB)) >= 2 or None, timeout=10)
    assert notes and all("Only an admin" in n["text"] for n in ephemerals_since(service, seen, BOB))
    assert not service.fake.views  # a refused Reject opens no form
    assert service.store.get(job.task_id).status is JobStatus.AWAITING_APPROVAL

    seen = len(service.fake.ephemerals)
    for _ in range(2):  # a double click
        assert service.sender.click(request, "laxai_approve", user=ADMIN).status == 200
    approved = service.fake.wait_for(
        lambda: (lambda j: j if j.status is JobStatus.QUEUED else None)(service.store.get(job.task_id)), timeout=10)
    assert approved.approval.decision == "approved" and approved.approval.decided_by == ADMIN
    decision = posted(service, job.task_id, "decision")
    assert "Approved* by <@U0ADMIN>" in text_of(decision) and decision["thread_ts"] == card["ts"]
    closed = wait_message(service, job.task_id, "approval", lambda m: not action_ids(m))
    assert "Approved* by <@U0ADMIN>" in text_of(closed)
    assert service.notifier.wait_idle(30)
    assert ephemerals_since(service, seen, ADMIN) == []  # its own second click: nothing to say
    keys = [m["metadata"]["event_payload"]["key"] for m in service.fake.by_metadata(job.task_id)]
    assert len(keys) == len(set(keys)), keys


def test_reject_asks_why_and_cancels_with_the_reason_in_the_thread(make_inproc):
    service = make_inproc()
    service.sender.command(f"budget set channel {BUDGET}/month", user=ADMIN)
    job = submit_held(service, "rejected")
    request = posted(service, job.task_id, "approval")

    assert service.sender.click(request, "laxai_reject", user=ADMIN).status == 200
    view = service.fake.wait_for(lambda: service.fake.views[-1] if service.fake.views else None, timeout=10)
    forged = service.sender.submit_view(view, {"reason": "nope"}, user=BOB)
    assert forged.json()["response_action"] == "errors" and "Only an admin" in forged.json()["errors"]["reason"]
    assert service.store.get(job.task_id).status is JobStatus.AWAITING_APPROVAL

    sent = service.sender.submit_view(view, {"reason": "too pricey this month"}, user=ADMIN)
    assert sent.status == 200 and not sent.response.content
    done = service.store.get(job.task_id)
    assert done.status is JobStatus.CANCELLED and done.approval.reason == "too pricey this month"
    final = posted(service, job.task_id, "final")
    assert "Rejected* by <@U0ADMIN>: too pricey this month" in text_of(final)
    closed = wait_message(service, job.task_id, "approval", lambda m: not action_ids(m))
    assert "Rejected* by <@U0ADMIN>" in text_of(closed)
    again = service.sender.submit_view(view, {"reason": "twice"}, user=ADMIN)  # the form sent again
    assert again.status == 200 and service.store.get(job.task_id).approval.reason == "too pricey this month"

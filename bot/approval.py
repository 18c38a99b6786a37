"""Block Kit for a job held over a budget: the approval request in its thread, and the decision.

Pure functions of a Job, like bot/blocks.py (which they build on). A job whose estimate
would take spend over a budget waits in ``awaiting_approval`` (orchestrator/domain/budget.py);
its thread gets one "approval requested" reply naming each budget it would cross, with
Approve and Reject buttons for ``SLACK_ADMIN_USERS``. Once an admin decides, that reply is
edited to say who decided, without its buttons (``request(job)`` renders either form: the
buttons only while the job waits), and an approval gets a reply of its own; a rejection is
the job's final reply (``rejected``).
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.domain.cost import format_usd
from orchestrator.domain.job import BudgetCrossing, Job
from orchestrator.domain.status import JobStatus

from bot import blocks

APPROVE_ACTION = "laxai_approve"
REJECT_ACTION = "laxai_reject"
ACTIONS_BLOCK = "laxai_approval_actions"
MAX_LISTED = 10  # budgets named in one request (a job crosses at most three: tenant, channel, user)


def crossing_text(crossing: BudgetCrossing) -> str:
    """"channel <#C0123>'s $50/month budget: $48.20 spent + $3.10 estimated"."""
    owner, limit = blocks.budget_owner(crossing.scope, crossing.key), blocks.money(crossing.limit_usd)
    return (f"{owner}'s {limit}/{crossing.period} budget: "
            f"{format_usd(crossing.spent_usd)} spent + {format_usd(crossing.estimate_usd)} estimated")


def crossings_text(job: Job) -> str:
    """Every budget the job would cross, as one sentence."""
    crossed = list(job.approval.budgets) if job.approval else []
    if not crossed:
        return "Would cross a budget."
    parts = [crossing_text(c) for c in crossed[:MAX_LISTED]]
    return "Would cross " + "; ".join(parts) + "."


def decision_line(job: Job) -> str | None:
    """"Approved by @admin" / "Rejected by @admin: reason"; None while undecided."""
    approval = job.approval
    if approval is None or approval.decision is None:
        return None
    who = blocks.user_ref(approval.decided_by)
    if approval.decision == "approved":
        return f":white_check_mark: *Approved* by {who}"
    words = (approval.reason or "").strip().rstrip(".")
    reason = f": {blocks.escape(blocks.clip(words, 500))}" if words else ""
    return f":no_entry_sign: *Rejected* by {who}{reason}"


def request(job: Job) -> blocks.Message:
    """The approval request: while the job waits, with Approve and Reject; once decided, who decided."""
    head = f":raised_hand: *Approval needed* for *{blocks.escape(job.spec.display_name)}*"
    if job.estimate is not None:
        head += f" (\u2248 {format_usd(job.estimate.usd)})"
    text = f"{head}\n{crossings_text(job)}"
    decided = decision_line(job)
    if decided:
        return blocks.reply(f"{text}\n{decided}.")
    if job.status is not JobStatus.AWAITING_APPROVAL:  # cancelled by its submitter before anyone decided
        return blocks.reply(f"{text}\nNo longer waiting: it is {job.status.value}.")
    return blocks.reply(f"{text} An admin can approve it.", actions(job))


def submitted(job: Job, created: bool) -> blocks.Message:
    """The /train ack for a job held at submit: the usual words, then why it waits."""
    message = blocks.submitted(job, created)
    verb = "Queued" if created else "Already queued"
    text = message.blocks[0]["text"]["text"].replace(f":inbox_tray: {verb}", ":raised_hand: Held for approval", 1)
    return blocks.notice(f"{text}\n{crossings_text(job)} An admin can approve it in the job's thread.")


def actions(job: Job) -> dict[str, Any]:
    approve = blocks.button("Approve", APPROVE_ACTION, job.task_id, style="primary")
    reject = blocks.button("Reject", REJECT_ACTION, job.task_id, style="danger")
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [approve, reject]}


def approved(job: Job) -> blocks.Message:
    """The thread's reply once an admin approved the job (whatever it has done since)."""
    line = decision_line(job) or ":white_check_mark: *Approved*"
    return blocks.reply(f"{line}. It joins the queue.")


def rejected(job: Job) -> blocks.Message:
    """A rejected job's final reply (it ends cancelled, having run nothing)."""
    line = decision_line(job) or ":no_entry_sign: *Rejected*"
    return blocks.reply(f"{line}. It will not run; Retry submits it again.")


def was_rejected(job: Job) -> bool:
    return job.approval is not None and job.approval.decision == "rejected"


def closed(job: Job) -> bool:
    """The request needs no buttons any more: decided, or the job left the wait some other way."""
    return job.status is not JobStatus.AWAITING_APPROVAL


# -- the Reject form: an admin says why ----------------------------------------------

REJECT_CALLBACK = "laxai_reject_reason"
REASON_BLOCK = "reason"
REASON_ACTION = "value"
REASON_MAX = 500
DEFAULT_REASON = "over budget"


def reject_view(job: Job, channel: str, thread_ts: str | None) -> dict[str, Any]:
    """A small form asking why; the job, channel and thread travel in its metadata (a view_submission
    has no channel of its own)."""
    meta = json.dumps({"task": job.task_id, "channel": channel, "thread_ts": thread_ts}, separators=(",", ":"))
    reason = {"type": "plain_text_input", "action_id": REASON_ACTION, "max_length": REASON_MAX,
              "placeholder": {"type": "plain_text", "text": "e.g. over the channel's budget this month"}}
    return {
        "type": "modal",
        "callback_id": REJECT_CALLBACK,
        "title": {"type": "plain_text", "text": "Reject the job"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Keep waiting"},
        "private_metadata": meta,
        "blocks": [
            blocks.section(f"Reject *{blocks.escape(job.spec.display_name)}* (`{blocks.short_id(job.task_id)}`)? "
                           f"{crossings_text(job)} It will end cancelled without running."),
            {"type": "input", "block_id": REASON_BLOCK, "optional": True, "element": reason,
             "label": {"type": "plain_text", "text": "Why (shown in the job's thread)"}},
        ],
    }


def submitted_reject(view: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the form's metadata, the reason given or the default) from a view_submission's view."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        meta = {}
    values = ((view.get("state") or {}).get("values") or {}).get(REASON_BLOCK) or {}
    reason = str((values.get(REASON_ACTION) or {}).get("value") or "").strip()
    return (meta if isinstance(meta, dict) else {}), (reason[:REASON_MAX] or DEFAULT_REASON)

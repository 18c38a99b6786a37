"""Approve and Reject on a job held over a budget (bot/approval.py), and the Reject form.

Like the card's buttons (bot/listeners/buttons.py): validate, act, ack. Only
``SLACK_ADMIN_USERS`` may decide; anyone else gets an ephemeral refusal and nothing
changes. Approve decides at once; Reject opens a small form asking why, and the
form's submission decides. The service moves the job (``JobService.approve`` /
``reject``: a compare-and-set from awaiting_approval), so a double click, two
admins at once or a decision already taken over REST change nothing: the second
is told what was decided, or nothing when it is its own repeat. The thread's
"Approved by" / "Rejected by" and the request losing its buttons are the notifier's
(bot/plan.py), whoever decided.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext

from orchestrator.domain.job import Job
from orchestrator.domain.status import JobStatus
from orchestrator.service import Conflict, NotAllowed, NotFound

from bot import approval, blocks
from bot.access import Caller
from bot.listeners.buttons import GONE, clicker, thread_of
from bot.listeners.caller import caller_of
from bot.listeners.parts import FrontEndParts

log = logging.getLogger(__name__)

ADMINS_ONLY = ":no_entry: Only an admin (`SLACK_ADMIN_USERS`) can {verb} a job held by a budget."


class Approvals:
    """Listeners for Approve, Reject and the Reject form."""

    def __init__(self, parts: FrontEndParts):
        self.parts = parts

    def on_approve(self, ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        ack()
        caller, thread = clicker(body, context), thread_of(body)
        job = self.held_job(caller, str(action.get("value") or ""), "approve", thread)
        if job is None:
            return
        try:
            self.parts.service.approve(caller.tenant, job.task_id, by=caller.user, admin=True)
        except (Conflict, NotFound, NotAllowed):
            self.explain(caller, job.task_id, thread)
            return
        log.info("%s approved job %s", caller.user, job.task_id)

    def on_reject(self, ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        ack()
        caller, thread = clicker(body, context), thread_of(body)
        job = self.held_job(caller, str(action.get("value") or ""), "reject", thread)
        if job is None:
            return
        if job.status is not JobStatus.AWAITING_APPROVAL:
            self.explain(caller, job.task_id, thread)
            return
        view = approval.reject_view(job, caller.channel, thread or message_ts(body))
        try:
            self.parts.client.views_open(trigger_id=body.get("trigger_id") or "", view=view)
        except Exception as exc:  # noqa: BLE001 - say so rather than leave the admin waiting
            log.warning("views.open for a rejection failed: %s", exc)
            self.parts.tell(caller, ":warning: Couldn't open the Reject form; try the button again.", thread)

    def on_reason(self, ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        """The Reject form's submission: reject with the reason given (or "over budget")."""
        meta, reason = approval.submitted_reject(view)
        caller = caller_of(context, channel=str(meta.get("channel") or ""), request=str(view.get("id") or ""))
        task_id, thread = str(meta.get("task") or ""), meta.get("thread_ts")
        if caller.user not in self.parts.settings.admin_users:
            ack(response_action="errors",
                errors={approval.REASON_BLOCK: "Only an admin (SLACK_ADMIN_USERS) can reject a job held by a budget."})
            return
        try:
            self.parts.service.reject(caller.tenant, task_id, by=caller.user, admin=True, reason=reason)
        except (Conflict, NotFound, NotAllowed):
            ack()  # the form closes; what happened instead is said in the thread
            self.explain(caller, task_id, thread)
            return
        ack()
        log.info("%s rejected job %s", caller.user, task_id)

    def held_job(self, caller: Caller, task_id: str, verb: str, thread: str | None) -> Job | None:
        """The job an Approve/Reject click is about, or None after telling the clicker why not."""
        access = self.parts.access
        if not access.allowed(caller.channel):
            self.parts.tell(caller, access.not_allowed_text(), thread)
            return None
        if caller.user not in self.parts.settings.admin_users:
            log.info("%s may not %s job %s: not an admin", caller.user, verb, task_id)
            self.parts.tell(caller, ADMINS_ONLY.format(verb=verb), thread)
            return None
        job = access.lookup(caller, task_id)
        if job is None:
            self.parts.tell(caller, GONE, thread)
        return job

    def explain(self, caller: Caller, task_id: str, thread: str | None) -> None:
        """A decision that changed nothing: say what was decided, unless it was this admin's own
        (a double click, or a form sent twice)."""
        job = self.parts.access.lookup(caller, task_id)
        if job is None:
            self.parts.tell(caller, GONE, thread)
            return
        decided = job.approval.decided_by if job.approval else None
        if decided == caller.user:
            return
        line = approval.decision_line(job)
        what = f"{line}." if line else f"It is {job.status.value}; it no longer waits for approval."
        self.parts.tell(caller, f"`{blocks.short_id(task_id)}`: {what}", thread)


def message_ts(body: dict[str, Any]) -> str | None:
    return (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")

"""The card's buttons: Cancel, Retry and the W&B link.

A click is acked at once (sent when the listener returns: process_before_response);
a refused click gets an ephemeral note in the card's thread, and a Retry click is
idempotent per card and retry count, so a double click submits one job.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, BoltContext

from orchestrator.domain.errors import SpecError
from orchestrator.domain.job import Job
from orchestrator.service import Conflict, NotFound, QueueFull

from bot import blocks
from bot.access import Caller
from bot.listeners.caller import caller_of, idempotency_key, slack_origin
from bot.listeners.parts import FrontEndParts
from bot.options import spec_error_to_options

log = logging.getLogger(__name__)

GONE = "That job no longer exists."


class Buttons:
    """Listeners for the buttons on a job's card and in its thread."""

    def __init__(self, parts: FrontEndParts):
        self.parts = parts

    def on_cancel(self, ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        ack()  # sent when this returns (process_before_response); the work below is quick
        caller, thread = clicker(body, context), thread_of(body)
        task_id = str(action.get("value") or "")
        job = clicked_job(self.parts, caller, task_id, "cancel", thread)
        if job is None:
            return
        job, changed = self.parts.service.cancel(caller.tenant, task_id, by=caller.user)
        if changed:
            log.info("%s cancelled job %s", caller.user, task_id)
        elif job.status.is_terminal() and not (job.cancel and job.cancel.by == caller.user):
            self.parts.tell(caller, f"`{blocks.short_id(task_id)}` has already {job.status.value}; "
                                    "nothing to cancel.", thread)
        # else: a double click while it is being cancelled; nothing to say

    def on_retry(self, ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        ack()
        caller, thread = clicker(body, context), thread_of(body)
        task_id, seen = retry_value(str(action.get("value") or ""))
        if clicked_job(self.parts, caller, task_id, "retry", thread) is None:
            return
        message_ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
        # The same card (ts) knowing the same number of retries (seen) is the same click.
        key = idempotency_key("retry", caller.tenant, task_id, message_ts, seen)
        # Where the clicked message lives: its thread, or its own ts when it is the top-level card.
        # The service prefers what the original job knows, but its card's ts may not be stored yet.
        origin = slack_origin(caller, thread_ts=thread or message_ts)
        try:
            new = self.parts.service.retry(caller.tenant, task_id, origin=origin, idempotency_key=key)
        except NotFound:
            self.parts.tell(caller, GONE, thread)
            return
        except (Conflict, QueueFull) as exc:
            self.parts.tell(caller, f":hourglass: {blocks.escape(exc)}", thread)
            return
        except SpecError as exc:
            message = blocks.errors_message(spec_error_to_options(exc).errors, "No retry was submitted.")
            self.parts.tell(caller, message.blocks[0]["text"]["text"], thread)
            return
        log.info("%s retried job %s as %s", caller.user, task_id, new.task_id)

    def on_link(self, ack: Ack) -> None:
        ack()  # Slack sends link buttons' clicks too; they need only an ack

def clicked_job(parts: FrontEndParts, caller: Caller, task_id: str, verb: str, thread: str | None) -> Job | None:
    """The job a click on its card or thread is about (Cancel, Retry, Retry with changes, Promote), or None
    after telling the clicker why not: a channel the bot may not serve, a job they cannot see, or one that is
    neither theirs nor an admin's to act on."""
    access = parts.access
    if not access.allowed(caller.channel):
        parts.tell(caller, access.not_allowed_text(), thread)
        return None
    job = access.lookup(caller, task_id)
    if job is None:
        parts.tell(caller, GONE, thread)
        return None
    if not access.may_act(caller.user, job):
        log.info("%s may not %s job %s (submitted by %s)", caller.user, verb, task_id, job.origin.user)
        parts.tell(caller, access.refusal(job, verb), thread)
        return None
    return job


def clicker(body: dict[str, Any], context: BoltContext) -> Caller:
    """Who clicked, from where: Bolt's channel, else the container's (a click in an ephemeral message)."""
    channel = context.channel_id or (body.get("container") or {}).get("channel_id") or ""
    return caller_of(context, channel=channel, request=body.get("trigger_id"))


def thread_of(body: dict[str, Any]) -> str | None:
    container = body.get("container") or {}
    message = body.get("message") or {}
    return container.get("thread_ts") or message.get("thread_ts")


def retry_value(value: str) -> tuple[str, int]:
    """(task id, retries the card knew of) from a Retry button; plain ids are accepted too."""
    try:
        data = json.loads(value)
        return str(data["task"]), int(data.get("n", 0))
    except (ValueError, KeyError, TypeError):
        return value, 0

"""The form's submission: submit the job, or answer with errors under the form's fields.

Slack gives a view_submission no channel of its own: the form carries the channel
it was opened from (and a thread, if any) in its metadata (``bot.modal``). The
view id is the idempotency key, so a repeated delivery submits one job.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, BoltContext

from orchestrator.domain.errors import FieldError

from bot import modal
from bot.listeners.caller import caller_of, idempotency_key
from bot.listeners.parts import FrontEndParts
from bot.listeners.submit import NotSubmitted, submit

LOST_CHANNEL = "this form lost its channel; close it and run /train again"


class FormSubmission:
    """Listener for the /train form (``modal.CALLBACK_ID``)."""

    def __init__(self, parts: FrontEndParts):
        self.parts = parts

    def on_submit(self, ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        meta = modal.metadata(view)
        caller = caller_of(context, channel=str(meta.get("channel") or ""), request=str(view.get("id") or ""))
        access = self.parts.access
        if not caller.channel or not access.allowed(caller.channel):
            ack(**modal.errors_response([FieldError("", access.not_allowed_text() if caller.channel else LOST_CHANNEL)]))
            return
        key = idempotency_key("modal", caller.tenant, caller.channel, caller.user, caller.request)
        try:
            submit(self.parts, caller, modal.values(view), key, thread_ts=meta.get("thread_ts"), source="form")
        except NotSubmitted as exc:
            errors = exc.errors if exc.reason == "options" else [FieldError("", exc.words(form=True))]
            ack(**modal.errors_response(errors))
            return
        ack()  # closes the form; the card appears in the channel

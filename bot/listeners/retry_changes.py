"""Retry with changes: the card's button opens the form prefilled with the job's spec, and the
form's submission retries the job with the values as edited (``bot.retry_form``).

A click is checked as Retry's is (a channel where the bot works, a job the clicker may
see, its submitter or an admin) and the form opens at once: the click's trigger_id
expires in 3 s. The submission is checked again from the job its metadata names, so a
forged or replayed form retries nothing it could not retry by the button. The view id
is the idempotency key: a repeated delivery makes one job. The retry goes to the
original's thread (``JobService.retry``), where its card shows the lineage.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext

from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.domain.job import Job
from orchestrator.domain.spec import JobSpec
from orchestrator.service import Conflict, NotFound, QueueFull
from orchestrator.stores.base import StoreError

from bot import blocks, modal, retry_form
from bot.access import Caller
from bot.listeners.buttons import GONE, clicked_job, clicker, thread_of
from bot.listeners.caller import caller_of, idempotency_key, slack_origin
from bot.listeners.form import LOST_CHANNEL
from bot.listeners.parts import FrontEndParts
from bot.options import OptionErrors, spec_error_to_options

log = logging.getLogger(__name__)

NOT_YOURS = "only the job's submitter or an admin can retry {short}; nothing was submitted"
NOT_OPENED = ":warning: Couldn't open the form. Try again, or `/train retry {short}` to retry it as it was."


class RetryWithChanges:
    """Listeners for the Retry with changes button and its form (``retry_form.CALLBACK_ID``)."""

    def __init__(self, parts: FrontEndParts):
        self.parts = parts

    def on_click(self, ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        ack()  # sent when this returns (process_before_response), with views.open done by then
        caller, thread = clicker(body, context), thread_of(body)
        job = clicked_job(self.parts, caller, str(action.get("value") or ""), "retry", thread)  # as Retry
        if job is None:
            return
        short = blocks.short_id(job.task_id)
        if not job.status.is_terminal():
            self.parts.tell(caller, f"`{short}` is still {job.status.value}; only finished jobs can be retried.",
                            thread)
            return
        message_ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
        form = retry_form.view(job, caller.channel, thread or message_ts, self.parts.default_gpu,
                               self.parts.gpu_types)
        try:
            self.parts.client.views_open(trigger_id=caller.request, view=form)
        except Exception as exc:  # noqa: BLE001 - say so rather than leave the user waiting
            log.warning("views.open for a retry with changes failed: %s", exc)
            self.parts.tell(caller, NOT_OPENED.format(short=short), thread)

    def on_submit(self, ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        meta = modal.metadata(view)
        caller = caller_of(context, channel=str(meta.get("channel") or ""), request=str(view.get("id") or ""))
        job, refusal = self.authorised(caller, meta)
        if job is None:
            ack(**modal.errors_response([FieldError("", refusal)]))
            return
        try:
            spec = retry_form.changed_spec(job.spec, modal.values(view), self.parts.default_gpu)
        except OptionErrors as exc:
            ack(**modal.errors_response(exc))
            return
        errors = self.retry(caller, job, spec, retry_form.thread_of(meta))
        if errors:
            ack(**modal.errors_response(errors))
            return
        ack()  # closes the form; the new card appears in the original's thread

    def authorised(self, caller: Caller, meta: dict[str, Any]) -> tuple[Job | None, str]:
        """(the job the form retries, '') or (None, why not) for a submission."""
        access = self.parts.access
        if not caller.channel:
            return None, LOST_CHANNEL
        if not access.allowed(caller.channel):
            return None, access.not_allowed_text()
        task_id = retry_form.retried_job(meta)
        job = access.lookup(caller, task_id) if task_id else None
        if job is None:
            return None, GONE
        if not access.may_act(caller.user, job):
            log.info("%s may not retry job %s (submitted by %s) from a form", caller.user, job.task_id,
                     job.origin.user)
            return None, NOT_YOURS.format(short=blocks.short_id(job.task_id))
        return job, ""

    def retry(self, caller: Caller, job: Job, spec: JobSpec, thread: str | None) -> list[FieldError]:
        """Submit the retry; the errors to show under the form, or [] when it was stored."""
        key = idempotency_key("retry-form", caller.tenant, caller.channel, caller.user, caller.request)
        try:
            new = self.parts.service.retry(caller.tenant, job.task_id, origin=slack_origin(caller, thread),
                                           idempotency_key=key, spec=spec)
        except NotFound:
            return [FieldError("", GONE)]
        except (Conflict, QueueFull) as exc:
            return [FieldError("", f"not submitted: {exc}")]
        except SpecError as exc:
            return spec_error_to_options(exc).errors
        except StoreError:
            log.exception("storing a retry with changes of %s failed", job.task_id)
            return [FieldError("", "the job store is unavailable; try again in a minute")]
        log.info("%s retried job %s with changes as %s", caller.user, job.task_id, new.task_id)
        return []

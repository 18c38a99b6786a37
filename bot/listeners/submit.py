"""Submitting a job from Slack: the step the command and the form share.

``submit`` stores and queues the job or raises NotSubmitted saying why nothing was
stored; each listener words that its own way (an ephemeral reply, errors under
the form's fields).
"""

from __future__ import annotations

import logging
from typing import Literal

from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.domain.job import Job
from orchestrator.service import QueueFull
from orchestrator.stores.base import StoreError

from bot.access import Caller
from bot.listeners.caller import slack_origin
from bot.listeners.parts import FrontEndParts
from bot.options import OptionErrors, build_spec, spec_error_to_options, typed_names

log = logging.getLogger(__name__)

# (the command's ephemeral reply, the form's error) when the queue is full or the store is down.
WORDING = {
    "queue_full": (":hourglass: Not submitted: {detail}.", "not submitted: {detail}"),
    "store_down": (":warning: The job store is unavailable right now; nothing was submitted. Try again in a minute.",
                   "the job store is unavailable; try again in a minute"),
}


class NotSubmitted(Exception):
    """Nothing was stored: bad ``options`` (``errors``, by the names typed), the tenant's queue is
    full (``detail`` says so), or the store is down."""

    def __init__(self, reason: Literal["options", "queue_full", "store_down"], errors: list[FieldError] | None = None,
                 detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.errors = errors or []
        self.detail = detail

    def words(self, form: bool = False) -> str:
        """What the command (or the form) says when the reason is not the options."""
        return WORDING[self.reason][form].format(detail=self.detail)


def submit(parts: FrontEndParts, caller: Caller, values: dict[str, tuple[str, str]], key: str | None,
           thread_ts: str | None = None, source: str = "/train") -> tuple[Job, bool]:
    """(job, created) for ``values`` ({option key: (name as typed, raw text)}); a repeated ``key``
    returns the first job."""
    try:
        spec = build_spec(caller.tenant, values)
    except OptionErrors as exc:
        raise NotSubmitted("options", exc.errors) from None
    try:
        job, created = parts.service.submit(spec, slack_origin(caller, thread_ts), idempotency_key=key)
    except SpecError as exc:
        raise NotSubmitted("options", spec_error_to_options(exc, typed_names(values)).errors) from None
    except QueueFull as exc:
        raise NotSubmitted("queue_full", detail=str(exc)) from None
    except StoreError:
        log.exception("storing a job from %s failed", source)
        raise NotSubmitted("store_down") from None
    log.info("%s by %s in %s: job %s (%s)", source, caller.user, caller.channel, job.task_id,
             "created" if created else "repeat")
    return job, created

"""The model registry in Slack: the completion reply's Promote button and ``/train models [NAME]``.

Like the card's buttons (bot/listeners/buttons.py): validate, act, ack. Promote sets the
registry's ``production`` alias to the job's model version (orchestrator/model_service.py: one
compare-and-set, with who and when); it is for the job's submitter and ``SLACK_ADMIN_USERS``,
anyone else gets an ephemeral refusal and nothing changes. The promoter is told the outcome
ephemerally. ``/train models`` shows what the caller may see of a job (bot/access.py): versions
trained in this channel or by the caller.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext

from orchestrator.model_service import ModelService, UnknownModel
from orchestrator.registry.base import ModelEntry
from orchestrator.service import NotAllowed

from bot import blocks, model_blocks
from bot.access import Caller
from bot.listeners.buttons import clicked_job, clicker, thread_of
from bot.listeners.parts import FrontEndParts

log = logging.getLogger(__name__)

NOT_REGISTERED = "`{short}` has no registered model to promote (its registration failed, or it did not complete)."


class Models:
    """Promote clicks and the ``/train models`` answer."""

    def __init__(self, parts: FrontEndParts):
        self.parts = parts

    @property
    def service(self) -> ModelService:
        return ModelService(self.parts.service)

    def on_promote(self, ack: Ack, body: dict[str, Any], action: dict[str, Any], context: BoltContext) -> None:
        ack()  # a registry write: quick enough to do here
        caller, thread = clicker(body, context), thread_of(body)
        task_id = str(action.get("value") or "")
        job = clicked_job(self.parts, caller, task_id, "promote", thread)  # the submitter or an admin, as Retry
        if job is None:
            return
        name, version = job.artifacts.registry_name, job.artifacts.registry_version
        if not name or version is None:
            self.parts.tell(caller, NOT_REGISTERED.format(short=blocks.short_id(task_id)), thread)
            return
        admin = caller.user in self.parts.settings.admin_users
        try:
            done = self.service.promote(caller.tenant, name, version, by=caller.user, admin=admin)
        except NotAllowed:
            log.info("%s may not promote %s v%s (job %s by %s)", caller.user, name, version, task_id, job.origin.user)
            self.parts.tell(caller, self.parts.access.refusal(job, "promote"), thread)
            return
        except UnknownModel:
            self.parts.tell(caller, NOT_REGISTERED.format(short=blocks.short_id(task_id)), thread)
            return
        self.parts.tell(caller, model_blocks.promoted_text(name, version, done.alias.alias, done.alias.previous,
                                                           done.changed), thread)

    def reply(self, caller: Caller, name: str | None) -> blocks.Message:
        """``/train models [NAME]``: the versions the caller may see, with their aliases."""
        listing = self.service.listing(caller.tenant, name)
        seen = [e for e in listing.entries if self.visible(caller, e)]
        return model_blocks.models_message(seen, listing.aliases, name)

    def visible(self, caller: Caller, entry: ModelEntry) -> bool:
        """A version trained in this channel or by the caller (a private channel's names stay there)."""
        if entry.source is None:  # registered before the registry recorded where from: the job says
            return self.parts.access.lookup(caller, entry.task_id) is not None
        if entry.source != "slack":
            return False
        return (bool(caller.channel) and entry.channel == caller.channel) or \
            (bool(caller.user) and entry.submitted_by == caller.user)

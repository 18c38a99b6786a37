"""The Slack user boundary: who may see, cancel and retry which job, and from where.

Inside one tenant (the Slack team, or the enterprise on Grid):

- a job is *seen* (``/train status|cancel|retry ID``, the buttons) only from its own
  channel or by its submitter, so a private channel's run names and ids stay there.
  A ref that matches nothing the caller may see gets the same answer whether the
  job exists elsewhere or not: no oracle for other channels' ids;
- cancel and retry are for the job's submitter and ``SLACK_ADMIN_USERS``;
- ``SLACK_ALLOWED_CHANNELS`` (when set) is where the command, the buttons and the form work.

Pure policy over JobService reads; the Bolt listeners in ``bot.listeners`` ask it.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.domain.job import Job
from orchestrator.service import JobService, NotFound

from bot import blocks
from bot.config import SlackSettings

LOOKUP_LIMIT = 1000  # jobs searched when an id is given by prefix
FULL_ID = 36
NOT_FOUND = "No job `{ref}` here. `/train list` shows this channel's jobs."


@dataclass(frozen=True)
class Caller:
    """Who sent a request, and from where."""

    tenant: str
    team: str
    user: str
    channel: str
    request: str  # trigger_id, view id...


class JobLookupError(LookupError):
    pass


class Access:
    """The rules above, for one Slack front end."""

    def __init__(self, service: JobService, settings: SlackSettings):
        self.service = service
        self.settings = settings

    # -- channels -------------------------------------------------------------------

    def allowed(self, channel: str | None) -> bool:
        allowed = self.settings.allowed_channels
        return allowed is None or (channel or "") in allowed

    def not_allowed_text(self) -> str:
        channels = ", ".join(f"<#{c}>" for c in sorted(self.settings.allowed_channels or ()))
        return f":no_entry: LaxAI Train isn't enabled in this channel. Use it in {channels}."

    # -- acting on a job ----------------------------------------------------------------

    def may_act(self, user: str, job: Job) -> bool:
        """Cancel and retry: the job's submitter or an admin."""
        return (bool(user) and user == job.origin.user) or user in self.settings.admin_users

    @staticmethod
    def refusal(job: Job, verb: str) -> str:
        return (f":no_entry: Only {blocks.user_ref(job.origin.user)}, who started `{blocks.short_id(job.task_id)}`, "
                f"or an admin can {verb} it.")

    # -- seeing a job ---------------------------------------------------------------------

    @staticmethod
    def visible(caller: Caller, job: Job) -> bool:
        """A Slack job of the caller's channel, or one the caller submitted (from any channel)."""
        if job.origin.source != "slack":
            return False
        same_channel = bool(caller.channel) and job.origin.channel == caller.channel
        own = bool(caller.user) and job.origin.user == caller.user
        return same_channel or own

    def lookup(self, caller: Caller, task_id: str) -> Job | None:
        """The job with this full id, if the caller may see it."""
        try:
            job = self.service.get(caller.tenant, task_id)
        except NotFound:
            return None
        return job if self.visible(caller, job) else None

    def candidates(self, caller: Caller) -> list[Job]:
        """Jobs the caller may see, newest first: this channel's, then their own elsewhere."""
        found = {j.task_id: j for j in self.service.list(caller.tenant, channel=caller.channel, limit=LOOKUP_LIMIT)}
        for job in self.service.list(caller.tenant, limit=LOOKUP_LIMIT):
            found.setdefault(job.task_id, job)
        return [j for j in found.values() if self.visible(caller, j)]

    def find(self, caller: Caller, ref: str) -> Job:
        """A job the caller may see, by id or id prefix (this channel's jobs win a tie)."""
        if len(ref) == FULL_ID:
            job = self.lookup(caller, ref)
            if job is None:
                raise JobLookupError(NOT_FOUND.format(ref=ref))
            return job
        matches = [j for j in self.candidates(caller) if j.task_id.startswith(ref)]
        if len(matches) > 1:
            local = [j for j in matches if j.origin.channel == caller.channel]
            matches = local if len(local) == 1 else matches
        if not matches:
            raise JobLookupError(NOT_FOUND.format(ref=ref))
        if len(matches) > 1:
            ids = ", ".join(f"`{j.task_id[:12]}`" for j in matches[:5])
            raise JobLookupError(f"`{ref}` matches {len(matches)} jobs ({ids}); give more of the id.")
        return matches[0]

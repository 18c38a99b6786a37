"""The /train command: parse its text, act, and answer with an ephemeral reply in the ack.

The command path makes no Web API call except views.open for the form (its
trigger_id expires in 3 s); cards and threads are the notifier's job.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import Ack, BoltContext

from orchestrator.domain.errors import SpecError
from orchestrator.domain.job import Job
from orchestrator.domain.status import JobStatus
from orchestrator.service import Conflict, QueueFull
from orchestrator.spend_reports import spend_report

from bot import approval, blocks, commands, cost_blocks, modal
from bot.access import Caller, JobLookupError
from bot.budget_command import BudgetList, BudgetRemove, BudgetSet
from bot.listeners.budgets import BudgetReplies
from bot.listeners.caller import caller_of, idempotency_key, slack_origin
from bot.listeners.models import Models
from bot.listeners.parts import FrontEndParts
from bot.listeners.submit import NotSubmitted, submit
from bot.options import OptionErrors, spec_error_to_options

log = logging.getLogger(__name__)

BUDGET_COMMANDS = (BudgetList, BudgetSet, BudgetRemove)  # /train budget … (bot/budget_command.py)
SLOW_ACK = 2.0  # seconds; past this an ack is logged as slow (Slack gives up at 3)
BOOM = ":boom: Something went wrong on our side. Check `/train list` before trying again."


class SlashCommand:
    """``/train`` (or a renamed command) and its subcommands."""

    def __init__(self, parts: FrontEndParts):
        self.parts = parts
        self.budgets = BudgetReplies(parts)

    def on_command(self, ack: Ack, body: dict[str, Any], context: BoltContext) -> None:
        started = time.monotonic()
        try:
            reply = self.reply(caller_of(context, request=body.get("trigger_id")), body.get("text") or "")
        except Exception:  # noqa: BLE001 - the user gets words, the log gets the trace
            log.exception("/train failed")
            reply = blocks.notice(BOOM)
        if reply is None:
            ack()
        else:
            ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")
        elapsed = time.monotonic() - started
        if elapsed > SLOW_ACK:
            log.warning("/train took %.2fs to answer (Slack allows 3s)", elapsed)

    def reply(self, caller: Caller, text: str) -> blocks.Message | None:
        """The answer to ``/train text``; None when the form opened instead."""
        if not self.parts.access.allowed(caller.channel):
            return blocks.notice(self.parts.access.not_allowed_text())
        try:
            command = commands.parse(text)
        except OptionErrors as exc:
            return blocks.errors_message(exc.errors)
        if isinstance(command, commands.OpenModal):
            return self.open_modal(caller)
        if isinstance(command, commands.Help):
            return blocks.help_message(self.parts.gpu_types)
        if isinstance(command, commands.Train):
            return self.submit(caller, command.values)
        if isinstance(command, commands.ListJobs):
            return blocks.list_message(self.parts.service.list(caller.tenant, channel=caller.channel, limit=10))
        if isinstance(command, BUDGET_COMMANDS):
            return self.budgets.reply(caller, command)
        if isinstance(command, commands.Models):  # the registry (bot/listeners/models.py)
            return Models(self.parts).reply(caller, command.name)
        if isinstance(command, commands.Costs):  # the team's spend (orchestrator/spend_reports.py)
            jobs = self.parts.service
            return cost_blocks.costs_message(spend_report(jobs.store, getattr(jobs, "spending", None),
                                                          caller.tenant, command.period))
        return self.about_job(caller, command)

    def about_job(self, caller: Caller, command: commands.Status | commands.Cancel | commands.Retry) -> blocks.Message:
        """``status [ID]``, ``cancel ID`` and ``retry ID``: find the job the caller may see, then act."""
        try:
            if isinstance(command, commands.Status) and command.ref is None:
                job = self.latest(caller)
            else:
                job = self.parts.access.find(caller, command.ref)
        except JobLookupError as exc:
            return blocks.notice(f":mag: {exc}")
        if isinstance(command, commands.Status):
            return blocks.status_message(self.parts.view(job), self.parts.default_gpu)
        if isinstance(command, commands.Cancel):
            return self.cancel(caller, job)
        return self.retry(caller, job)

    def latest(self, caller: Caller) -> Job:
        jobs = self.parts.service.list(caller.tenant, channel=caller.channel, limit=1)
        if not jobs:
            raise JobLookupError("No jobs in this channel yet. Start one with `/train epochs=10 arch=yolo`.")
        return jobs[0]

    def open_modal(self, caller: Caller) -> blocks.Message | None:
        if not caller.request:
            return blocks.notice(":warning: Slack sent no trigger to open the form; use `/train key=value`.")
        view = modal.view(caller.channel, self.parts.default_gpu, gpu_types=self.parts.gpu_types)
        try:
            self.parts.client.views_open(trigger_id=caller.request, view=view)
        except Exception as exc:  # noqa: BLE001 - say so rather than leave the user waiting
            log.warning("views.open failed: %s", exc)
            return blocks.notice(":warning: Couldn't open the form. Try `/train epochs=10 arch=yolo` instead.")
        return None

    def submit(self, caller: Caller, values: dict[str, tuple[str, str]]) -> blocks.Message:
        key = idempotency_key("train", caller.tenant, caller.team, caller.channel, caller.user, caller.request) \
            if caller.request else None
        try:
            job, created = submit(self.parts, caller, values, key)
        except NotSubmitted as exc:
            if exc.reason == "options":
                return blocks.errors_message(exc.errors)
            return blocks.notice(exc.words())
        if job.status is JobStatus.AWAITING_APPROVAL:
            return approval.submitted(job, created)
        return blocks.submitted(job, created)

    def cancel(self, caller: Caller, job: Job) -> blocks.Message:
        short = blocks.short_id(job.task_id)
        if not self.parts.access.may_act(caller.user, job):
            return blocks.notice(self.parts.access.refusal(job, "cancel"))
        job, changed = self.parts.service.cancel(caller.tenant, job.task_id, by=caller.user)
        if changed:
            log.info("%s cancelled job %s", caller.user, job.task_id)
            return blocks.notice(f":octagonal_sign: Cancelling `{short}`; the thread will say when it has stopped.")
        if job.status.is_terminal():
            return blocks.notice(f"`{short}` has already {job.status.value}; nothing to cancel.")
        return blocks.notice(f"`{short}` is already being cancelled.")

    def retry(self, caller: Caller, job: Job) -> blocks.Message:
        if not self.parts.access.may_act(caller.user, job):
            log.info("%s may not retry job %s (submitted by %s)", caller.user, job.task_id, job.origin.user)
            return blocks.notice(self.parts.access.refusal(job, "retry"))
        key = idempotency_key("retry-cmd", caller.tenant, caller.channel, caller.user, caller.request)
        try:
            new = self.parts.service.retry(caller.tenant, job.task_id, origin=slack_origin(caller),
                                           idempotency_key=key)
        except Conflict:
            return blocks.notice(f"`{blocks.short_id(job.task_id)}` is still {job.status.value}; "
                                 "only finished jobs can be retried.")
        except SpecError as exc:
            return blocks.errors_message(spec_error_to_options(exc).errors, "No retry was submitted.")
        except QueueFull as exc:
            return blocks.notice(f":hourglass: No retry was submitted: {blocks.escape(exc)}.")
        log.info("%s retried job %s as %s", caller.user, job.task_id, new.task_id)
        return blocks.notice(f":repeat: Retrying `{blocks.short_id(job.task_id)}` as `{blocks.short_id(new.task_id)}`;"
                             " it is announced in the original's thread.")

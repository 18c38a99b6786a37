"""The Bolt listeners: the /train command, the card's buttons and the form's submission.

Each listener follows bolt-python's shape: it validates, calls JobService (store +
queue) and acks, inside Slack's 3 seconds; cards and threads are the notifier's job.
Who is calling comes from Bolt's ``context`` (``caller.caller_of``); who may see and
do what is ``bot.access``. ``register`` wires them into an App.
"""

from __future__ import annotations

import re

from slack_bolt import App

from bot import approval, blocks, modal, retry_form
from bot.listeners.approvals import Approvals
from bot.listeners.buttons import Buttons
from bot.listeners.form import FormSubmission
from bot.listeners.models import Models
from bot.listeners.parts import FrontEndParts
from bot.listeners.retry_changes import RetryWithChanges
from bot.listeners.slash import SlashCommand


def register(app: App, parts: FrontEndParts) -> None:
    """Every listener of the Slack front end, as bound methods (Bolt skips ``self``)."""
    command, buttons, form = SlashCommand(parts), Buttons(parts), FormSubmission(parts)
    app.command(re.compile(r"^/"))(command.on_command)  # /train, or a renamed one
    app.action(blocks.CANCEL_ACTION)(buttons.on_cancel)
    app.action(blocks.RETRY_ACTION)(buttons.on_retry)
    app.action(blocks.WANDB_ACTION)(buttons.on_link)
    app.view(modal.CALLBACK_ID)(form.on_submit)
    retry_changes = RetryWithChanges(parts)  # the prefilled form (bot/retry_form.py)
    app.action(blocks.RETRY_CHANGES_ACTION)(retry_changes.on_click)
    app.view(retry_form.CALLBACK_ID)(retry_changes.on_submit)
    approvals = Approvals(parts)  # a job held over a budget (bot/approval.py)
    app.action(approval.APPROVE_ACTION)(approvals.on_approve)
    app.action(approval.REJECT_ACTION)(approvals.on_reject)
    app.view(approval.REJECT_CALLBACK)(approvals.on_reason)
    app.action(blocks.PROMOTE_ACTION)(Models(parts).on_promote)  # the completion reply's Promote

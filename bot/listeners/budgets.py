"""``/train budget``: list the budgets (anyone), set or remove one (admins), through the budget store.

The parsing is pure (bot/budget_command.py); the store and the spend are the service's
(``JobService.spending``, orchestrator/spending.py), which audits every change with the
admin's Slack user id. A bare ``channel`` or ``tenant`` means the caller's own; another
workspace's tenant budget is not this workspace's admins' to change.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from orchestrator.domain.budget import Budget
from orchestrator.domain.errors import FieldError

from bot import blocks, budget_blocks
from bot.access import Caller
from bot.budget_command import BudgetCommand, BudgetList, BudgetRemove, BudgetSet
from bot.listeners.parts import FrontEndParts

log = logging.getLogger(__name__)

ADMINS_ONLY = ":no_entry: Only an admin (`SLACK_ADMIN_USERS`) can change budgets. `/train budget` lists them."


class BudgetReplies:
    """The answers to ``/train budget …`` (ephemeral, in the command's ack)."""

    def __init__(self, parts: FrontEndParts):
        self.parts = parts

    @property
    def spending(self):
        return self.parts.service.spending

    def reply(self, caller: Caller, command: BudgetCommand) -> blocks.Message:
        if isinstance(command, BudgetList):
            return budget_blocks.budgets_message(self.spending.standing(caller.tenant))
        if caller.user not in self.parts.settings.admin_users:
            log.info("%s may not change budgets: not an admin", caller.user)
            return blocks.notice(ADMINS_ONLY)
        key, refused = self.key_for(caller, command.scope, command.key)
        if refused is not None:
            return refused
        if isinstance(command, BudgetSet):
            return self.set(caller, command, key)
        return self.remove(caller, command, key)

    def key_for(self, caller: Caller, scope: str, key: str | None) -> tuple[str, blocks.Message | None]:
        """The budget's key (the caller's own channel or tenant when none is given), or a refusal."""
        own = caller.tenant if scope == "tenant" else caller.channel if scope == "channel" else ""
        key = key or own
        if scope == "tenant" and key != caller.tenant:
            error = FieldError("tenant", f"only this workspace's budget can be set here: `tenant` (or "
                                         f"`tenant={caller.tenant}`)")
            return key, blocks.errors_message([error], "No budget was changed.")
        return key, None

    def set(self, caller: Caller, command: BudgetSet, key: str) -> blocks.Message:
        try:
            budget = Budget(scope=command.scope, key=key, usd=command.usd, period=command.period)
        except ValidationError as exc:
            words = "; ".join(e["msg"] for e in exc.errors())
            return blocks.errors_message([FieldError(command.scope, words)], "No budget was changed.")
        change = self.spending.set(budget, by=caller.user)
        log.info("%s set budget %s", caller.user, budget.text())
        row = next((r for r in self.spending.standing(caller.tenant) if r.budget.ident == budget.ident), None)
        return budget_blocks.set_message(budget, change.old if change else None, row)

    def remove(self, caller: Caller, command: BudgetRemove, key: str) -> blocks.Message:
        change = self.spending.remove(command.scope, key, by=caller.user)
        if change is not None:
            log.info("%s removed budget %s:%s", caller.user, command.scope, key)
        base = next((b for b in self.spending.settings.BUDGETS if b.ident == (command.scope, key)), None)
        return budget_blocks.removed_message(command.scope, key, change is not None, base)

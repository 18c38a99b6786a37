"""The ephemeral answers to ``/train budget``: the budgets with spend and what is left, and changes.

Pure functions of ``orchestrator.spending.BudgetStanding`` rows (bot/listeners/budgets.py reads them).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.domain.budget import Budget
from orchestrator.domain.cost import format_usd
from orchestrator.spending import BudgetStanding

from bot import blocks

MAX_LISTED = 40
SET_ONE = "An admin sets one with `/train budget set channel=C0123 50/month` (or tenant, user=U0456)."


def limit_text(budget: Budget) -> str:
    """"$50/month"."""
    return f"{blocks.money(budget.usd)}/{budget.period}"


def standing_line(row: BudgetStanding) -> str:
    source = "set in Slack or REST" if row.stored else "from BUDGETS"
    return (f"\u2022 {blocks.budget_owner(row.budget.scope, row.budget.key)}: *{limit_text(row.budget)}* \u00b7 "
            f"{format_usd(row.spent_usd)} spent since {row.period_start:%b %-d} \u00b7 "
            f"*{format_usd(row.left_usd)} left* ({source})")


def budgets_message(rows: Sequence[BudgetStanding]) -> blocks.Message:
    """``/train budget``: every budget this workspace's jobs are held to."""
    if not rows:
        return blocks.notice(f":moneybag: No budgets are set. {SET_ONE}")
    lines = [standing_line(row) for row in rows[:MAX_LISTED]]
    if len(rows) > MAX_LISTED:
        lines.append(f"\u2026 and {len(rows) - MAX_LISTED} more")
    head = (":moneybag: *Budgets* (spend counts finished jobs' cost and the estimates of those still to run; "
            "a job that would go over waits for an admin's approval)")
    return blocks.notice(head + "\n" + "\n".join(lines))


def set_message(budget: Budget, old: Budget | None, row: BudgetStanding | None) -> blocks.Message:
    """A budget set (or set again to what it was)."""
    owner = blocks.budget_owner(budget.scope, budget.key)
    was = f" (was {limit_text(old)})" if old is not None and old != budget else ""
    text = f":moneybag: {owner}'s budget is now *{limit_text(budget)}*{was}."
    if row is not None:
        text += f" {format_usd(row.spent_usd)} spent this {budget.period}; {format_usd(row.left_usd)} left."
    return blocks.notice(text)


def removed_message(scope: str, key: str, removed: bool, base: Budget | None) -> blocks.Message:
    """A stored budget removed; the settings' BUDGETS entry, when there is one, applies again."""
    owner = blocks.budget_owner(scope, key)
    if not removed:
        text = f":mag: No budget was set for {owner} here."
        if base is not None:
            text += f" Its {limit_text(base)} comes from the `BUDGETS` setting, which only the deployment changes."
        return blocks.notice(text)
    after = f" `BUDGETS`' {limit_text(base)} applies again." if base is not None else " It has no budget now."
    return blocks.notice(f":wastebasket: Removed {owner}'s budget.{after}")

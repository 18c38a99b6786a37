"""Block Kit for ``/train costs [week|month]``: the team's spend report, as an ephemeral answer.

Pure: a SpendReport (orchestrator/domain/spend.py) in, a Message out. Slack ids become mentions
(``<@U…>``, ``<#C…>``, which notify nobody in an ephemeral answer); every other key goes through
``escape``. Each breakdown shows its ``TOP`` most expensive lines, so the answer stays within
Block Kit's limits however many users a team has.
"""

from __future__ import annotations

from orchestrator.domain.durations import duration
from orchestrator.domain.spend import SpendLine, SpendReport

from bot.blocks import SLACK_CHANNEL, Message, budget_owner, clip, context, escape, fit, money, section, user_ref

TOP = 8


def _who(kind: str, key: str) -> str:
    if kind == "user":
        return user_ref(key) if not key.startswith("(") else escape(key)
    if kind == "channel" and SLACK_CHANNEL.fullmatch(key):
        return f"<#{key}>"
    return f"`{escape(key)}`"


def _breakdown(title: str, kind: str, lines: list[SpendLine]) -> str:
    rows = [f"\u2022 {_who(kind, line.key)}: {money(line.usd)} \u00b7 {line.jobs} job{'s' if line.jobs != 1 else ''}"
            f" \u00b7 {duration(line.billed_seconds)}" for line in lines[:TOP]]
    if len(lines) > TOP:
        rows.append(f"\u2022 and {len(lines) - TOP} more")
    return clip(f"*{title}*\n" + "\n".join(rows), 3000)


def _budget_rows(report: SpendReport) -> str:
    rows = [f"\u2022 {budget_owner(b['scope'], b['key'])}: {money(b['spent_usd'])} of {money(b['usd'])}/{b['period']}"
            f" \u00b7 *{money(b['left_usd'])} left*" for b in report.budgets]
    return clip("*Budgets* (spent counts running and queued jobs' estimates)\n" + "\n".join(rows), 3000)


def costs_message(report: SpendReport) -> Message:
    """The ephemeral answer: the total, four breakdowns and the budgets that apply."""
    head = (f":moneybag: *Spend this {report.period}* ({report.start:%b %d} to {report.end:%b %d} UTC): "
            f"*{money(report.total_usd)}* over {report.billed_jobs} of {report.jobs} jobs")
    blocks = [section(head)]
    if report.billed_jobs:
        for title, kind, lines in (("By user", "user", report.by_user), ("By channel", "channel", report.by_channel),
                                   ("By architecture", "arch", report.by_architecture),
                                   ("By GPU", "gpu", report.by_gpu_type)):
            blocks.append(section(_breakdown(title, kind, lines)))
    else:
        blocks.append(section("Nothing billed yet in this period."))
    if report.budgets:
        blocks.append(section(_budget_rows(report)))
    if report.truncated:
        blocks.append(context("Only the newest jobs of the period were read."))
    text = f"Spend this {report.period}: {money(report.total_usd)} over {report.billed_jobs} jobs"
    return Message(text, fit(blocks))

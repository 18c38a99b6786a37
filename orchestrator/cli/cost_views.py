"""Rich rendering of ``laxai costs``: a tenant's spend in a period (GET /costs), four ways, with budgets."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from orchestrator.domain import durations
from orchestrator.domain.cost import format_usd

BREAKDOWNS = (("by_user", "User"), ("by_channel", "Channel"), ("by_architecture", "Architecture"),
              ("by_gpu_type", "GPU"))


def _day(value: Any) -> str:
    return str(value)[:10]


def _lines(title: str, lines: list[dict[str, Any]]) -> Table:
    table = Table(title=title, box=box.SIMPLE, title_justify="left")
    table.add_column(title)
    table.add_column("Cost", justify="right")
    table.add_column("Jobs", justify="right")
    table.add_column("Billed", justify="right")
    for line in lines:
        table.add_row(line["key"], format_usd(line["usd"]), str(line["jobs"]),
                      durations.duration(line["billed_seconds"], unknown="-", compact=True))
    return table


def budgets_table(budgets: list[dict[str, Any]]) -> Table:
    table = Table(title="Budgets", box=box.SIMPLE, title_justify="left")
    for name, justify in (("Budget", "left"), ("Limit", "right"), ("Spent", "right"), ("Left", "right")):
        table.add_column(name, justify=justify)
    for b in budgets:
        table.add_row(f"{b['scope']} {b['key']}", f"{format_usd(b['usd'])}/{b['period']}",
                      format_usd(b["spent_usd"]), format_usd(b["left_usd"]))
    return table


def report(data: dict[str, Any]) -> Group:
    """The whole report: a header line, one table per breakdown with lines, and the budgets."""
    head = Text(f"Spend this {data['period']} ({_day(data['start'])} to {_day(data['end'])} UTC): "
                f"{format_usd(data['total_usd'])} over {data['billed_jobs']} of {data['jobs']} jobs")
    parts: list[Any] = [head]
    if data.get("truncated"):
        parts.append(Text("(only the newest jobs of the period were read)", style="yellow"))
    if not data["billed_jobs"]:
        parts.append(Text("Nothing billed yet in this period."))
    else:
        parts.extend(_lines(title, data[key]) for key, title in BREAKDOWNS)
    if data.get("budgets"):
        parts.append(budgets_table(data["budgets"]))
    return Group(*parts)

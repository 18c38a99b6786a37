"""`laxai models`: its command group's grammar and its tables.

``laxai models`` and ``laxai models NAME`` list (``list`` is implied when the first word is not a
subcommand); ``laxai models promote NAME vN`` promotes. The tables show what ``GET /models`` and
``POST /models/{name}/versions/{v}/promote`` answer (orchestrator/api/model_routes.py).
"""

from __future__ import annotations

from typing import Any

import click
from rich import box
from rich.table import Column, Table
from rich.text import Text
from typer.core import TyperGroup


class ModelsGroup(TyperGroup):
    """A group whose default command is ``list``: ``laxai models [NAME] [--json]``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def _figure(metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def models_table(listing: dict[str, Any]) -> Table:
    """One row per version, newest first, with the aliases pointing at it (production in bold)."""
    table = Table(Column("name", overflow="fold", min_width=8), Column("version", no_wrap=True),
                  Column("mAP50-95", no_wrap=True), Column("mAP50", no_wrap=True), Column("aliases", no_wrap=True),
                  Column("architecture", no_wrap=True), Column("created", no_wrap=True), Column("task_id", overflow="fold"),
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for m in listing.get("models", []):
        aliases = Text(", ".join(m.get("aliases") or []), style="bold green" if "production" in (m.get("aliases") or [])
                       else "")
        table.add_row(m["name"], f"v{m['version']}", _figure(m["metrics"], "mAP50-95"), _figure(m["metrics"], "mAP50"),
                      aliases, m["architecture"], str(m.get("created_at", ""))[:16].replace("T", " "), m["task_id"])
    return table


def promoted(result: dict[str, Any]) -> str:
    """``players v3 is now production (was v2; set by api:team-a at 2026-11-30 08:01 UTC)``."""
    alias = result["alias"]
    if not result.get("changed"):
        return f"{alias['name']} v{alias['version']} is already {alias['alias']} (nothing changed)"
    was = f"was v{alias['previous']}; " if alias.get("previous") is not None else ""
    at = str(alias.get("set_at", ""))[:16].replace("T", " ")
    return f"{alias['name']} v{alias['version']} is now {alias['alias']} ({was}set by {alias['set_by']} at {at} UTC)"

"""The Slack notifier in three parts: the pure plan (bot/plan.py: what a thread still lacks),
the poster (``poster``: Slack calls, their failures, pacing) and the loop (``loop``: the change
feed and picking the next work; ``steps`` joins the ledger and the poster for one piece of work;
``state`` and ``work`` hold the small immutable per-job state and the candidates)."""

from __future__ import annotations

from bot.notifier.loop import Notifier
from bot.notifier.poster import METADATA_TYPE

__all__ = ["METADATA_TYPE", "Notifier"]

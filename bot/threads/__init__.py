"""The Slack ledger's own record (``slack_threads``): what the notifier posted for each job.

``base`` holds the record and the contract, ``sqlite``/``firestore`` the two backends,
``open_threads`` picks the one that sits beside the runtime's job store.
"""

from __future__ import annotations

from bot.threads.base import SlackThread, SlackThreads, open_threads

__all__ = ["SlackThread", "SlackThreads", "open_threads"]

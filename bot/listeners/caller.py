"""Who sent a request (from Bolt's ``context``), the Origin of the jobs it submits, and its
idempotency keys.

The tenant is the Slack team (the enterprise on Enterprise Grid), the submitter is
the user id. Idempotency keys come from the request (trigger_id, view id, message
ts), so a repeated delivery or a double click submits one job.
"""

from __future__ import annotations

import hashlib

from slack_bolt import BoltContext

from orchestrator.domain.job import Origin

from bot.access import Caller


def caller_of(context: BoltContext, *, channel: str | None = None, request: str | None = None) -> Caller:
    """The caller Bolt found in the request; ``channel`` where the payload carries none of its own
    (a form's channel travels in its metadata)."""
    team = context.team_id or ""
    return Caller(tenant=context.enterprise_id or team, team=team, user=context.user_id or "",
                  channel=channel if channel is not None else (context.channel_id or ""), request=request or "")


def slack_origin(caller: Caller, thread_ts: str | None = None) -> Origin:
    """The Origin of a job submitted or retried from Slack by ``caller``."""
    return Origin(source="slack", user=caller.user, team=caller.team, channel=caller.channel,
                  thread_ts=thread_ts or None, request_id=caller.request or None)


def idempotency_key(*parts: object) -> str:
    return "slack:" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:40]

"""The notifier's Slack side: post, edit, find an earlier post; what each failure means; pacing.

Every call returns an ``Outcome`` instead of raising, so the loop decides what
to do next from one word:

    posted        done (``ts``)
    rate_limited  a 429: not posted; the pacer already holds the channel (or every edit) back
    not_sent      a definite refusal (ok=false, connection refused): safe to post again
    maybe_sent    a timeout, a 5xx, a dropped connection: look in Slack before posting again
    blocks        Slack refused the blocks themselves: resend as plain text
    gone          the card can't be edited any more (deleted, archived, edit window closed)

Messages carry metadata (``laxai_notify`` with task and key), which is how ``find``
recognises an earlier post whose outcome was unknown; a file shared in the thread (the training
curves, bot/notifier/uploads.py) has none, so it is recognised by its file name.
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks, curves
from bot.clients import retry_after
from bot.pacer import Pacer

METADATA_TYPE = "laxai_notify"
# Slack refused the message itself: resend it as plain text rather than retry forever.
BLOCK_ERRORS = {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "invalid_metadata_format",
                "invalid_metadata_schema", "metadata_too_large", "markdown_text_conflict"}
# The card can't be edited any more; stop trying until it changes again.
UPDATE_GONE = {"message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found",
               "is_archived", "not_in_channel"}
# Looking for an earlier post can never work (the app lacks the history scopes).
LOOKUP_HOPELESS = {"missing_scope", "not_allowed_token_type", "no_permission"}
FIND_PAGES = 10


@dataclass(frozen=True)
class Outcome:
    """What one Slack call came to (the kinds are in the module docstring)."""

    kind: str
    ts: str | None = None
    error: str = ""
    wait: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind == "posted"


class SlackPoster:
    """Sends through one Web API client (no built-in retries), paced by ``Pacer``."""

    def __init__(self, client: WebClient, pacer: Pacer):
        self.client = client
        self.pacer = pacer
        self.sent = 0  # Web API calls made, for tests and logs

    def post(self, channel: str, thread: str | None, message: blocks.Message, task_id: str, key: str,
             plain: bool) -> Outcome:
        kwargs: dict[str, Any] = {
            "channel": channel,
            "text": message.text,
            "metadata": {"event_type": METADATA_TYPE, "event_payload": {"task_id": task_id, "key": key}},
            "unfurl_links": False,
            "unfurl_media": False,
            **blocks.NO_PARSING,
        }
        if not plain:
            kwargs["blocks"] = message.blocks
        if thread:
            kwargs["thread_ts"] = thread
        self.sent += 1
        try:
            response = self.client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            outcome = classify(exc)
            if outcome.kind == "rate_limited":
                self.pacer.post_limited(channel, outcome.wait)
            else:
                self.pacer.posted(channel)  # Slack meters requests, failed ones too: keep the channel's pace
            return outcome
        except Exception as exc:  # noqa: BLE001 - network trouble
            if _refused(exc):
                return Outcome("not_sent", error=str(exc))
            self.pacer.posted(channel)  # it may have reached Slack (and posted): it counts
            return Outcome("maybe_sent", error=str(exc))
        self.pacer.posted(channel)
        return Outcome("posted", ts=str(response.get("ts")))

    def update(self, channel: str, ts: str, message: blocks.Message, plain: bool) -> Outcome:
        """Edit the card; an edit is safe to repeat, so "maybe sent" is just a failure here."""
        self.sent += 1
        self.pacer.updated()
        try:
            self.client.chat_update(channel=channel, ts=ts, text=message.text,
                                    blocks=[] if plain else message.blocks, **blocks.NO_PARSING)
        except SlackApiError as exc:
            outcome = classify(exc)
            if outcome.kind == "rate_limited":
                self.pacer.update_limited(outcome.wait)
            elif outcome.error in UPDATE_GONE:
                return Outcome("gone", error=outcome.error)
            return outcome
        except Exception as exc:  # noqa: BLE001 - network trouble
            return Outcome("maybe_sent", error=str(exc))
        return Outcome("posted", ts=ts)

    def find(self, channel: str, thread: str | None, task_id: str, key: str, since: float) -> str | None:
        """The ts of an earlier post of ``key`` for ``task_id``, found by its metadata.

        In a thread: its replies; a top-level card: the channel from ``since`` - 2 minutes.
        Raises what the Web API raises.
        """
        cursor = None
        for _ in range(FIND_PAGES):
            if thread:
                response = self.client.conversations_replies(channel=channel, ts=thread, include_all_metadata=True,
                                                             limit=200, cursor=cursor)
            else:
                oldest = max(0.0, since - 120)
                response = self.client.conversations_history(channel=channel, oldest=f"{oldest:.6f}",
                                                             include_all_metadata=True, limit=200, cursor=cursor)
            self.sent += 1
            for message in response.get("messages") or []:
                if _is_ours(message, task_id, key):
                    return str(message.get("ts"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None


def classify(exc: SlackApiError) -> Outcome:
    """An error answer from the Web API as an ``Outcome``."""
    error = error_code(exc)
    status = int(getattr(exc.response, "status_code", 0) or 0)
    if status == 429 or error == "ratelimited":
        wait = retry_after(getattr(exc.response, "headers", None))
        return Outcome("rate_limited", error=error or "ratelimited", wait=max(1.0, wait or 1.0))
    if status >= 500:
        return Outcome("maybe_sent", error=f"HTTP {status}")
    if error in BLOCK_ERRORS:
        return Outcome("blocks", error=f"{error}: {exc.response.get('errors')}")
    return Outcome("not_sent", error=error)  # ok=false is a definite refusal


def lookup_hopeless(exc: Exception) -> bool:
    """Looking for an earlier post can never work here (missing scopes)."""
    return isinstance(exc, SlackApiError) and error_code(exc) in LOOKUP_HOPELESS


def error_code(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "")
    except Exception:  # noqa: BLE001 - a body that is not JSON
        return ""


def _is_ours(message: dict[str, Any], task_id: str, key: str) -> bool:
    if key == curves.KEY:
        return any(f.get("name") == curves.filename(task_id) for f in message.get("files") or [])
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    return (metadata.get("event_type") == METADATA_TYPE and payload.get("task_id") == task_id
            and payload.get("key") == key)


def _refused(exc: Exception) -> bool:
    """The connection was refused: the request never reached Slack."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    return isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, ConnectionRefusedError)

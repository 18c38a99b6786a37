"""A file into a thread with Slack's external upload flow, as ``files_upload_v2`` does it, in three calls:

1. ``files.getUploadURLExternal(filename, length)`` -> an ``upload_url`` and a ``file_id``;
2. POST the bytes (exactly ``length`` of them) to ``upload_url``; Slack answers HTTP 200;
3. ``files.completeUploadExternal(files=[{id, title}], channel_id, thread_ts, initial_comment)``
   shares it: only then does anything appear in the channel.

Both methods are Web API Tier 4 and need the ``files:write`` scope. The answer is an ``Outcome``
(bot/notifier/poster.py) like a post's: a failure before step 3 is ``not_sent`` (nothing was
shared), step 3 failing without an answer is ``maybe_sent``, and ``refused`` means it can never
work here (the scope is missing, uploads are disabled, the channel is gone): the notifier gives
the key up at once rather than retry it.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.notifier.poster import Outcome, classify
from bot.pacer import Pacer

# Errors no retry can fix: a missing scope or token kind, uploads off for the team, a file type or
# size the team refuses, a channel the bot cannot post in.
HOPELESS = {"missing_scope", "not_allowed_token_type", "no_permission", "invalid_auth", "account_inactive",
            "file_uploads_disabled", "file_uploads_except_images_disabled", "file_upload_size_restricted",
            "file_type_not_allowed", "channel_not_found", "not_in_channel", "is_archived",
            "restricted_action", "posting_to_general_channel_denied", "invalid_arguments", "missing_argument"}


@dataclass(frozen=True)
class Upload:
    """One file for one thread."""

    channel: str
    thread: str | None
    data: bytes
    filename: str
    title: str
    comment: str
    alt_text: str | None = None


def upload(client: WebClient, pacer: Pacer, item: Upload) -> Outcome:
    """Share ``item`` in its thread; ``Outcome("posted", ts=file id)`` when it is there."""
    try:
        answer = client.files_getUploadURLExternal(filename=item.filename, length=len(item.data),
                                                    alt_txt=item.alt_text)
    except SlackApiError as exc:
        return _refusal(exc, pacer, item.channel, shared=False)
    except Exception as exc:  # noqa: BLE001 - network trouble: nothing was shared
        return Outcome("not_sent", error=f"files.getUploadURLExternal: {exc}")
    file_id, url = str(answer.get("file_id") or ""), str(answer.get("upload_url") or "")
    sent = _send_bytes(url, item.data, float(client.timeout or 30))
    if sent:
        return Outcome("not_sent", error=f"upload of {item.filename}: {sent}")
    try:
        client.files_completeUploadExternal(files=[{"id": file_id, "title": item.title}], channel_id=item.channel,
                                            thread_ts=item.thread, initial_comment=item.comment)
    except SlackApiError as exc:
        pacer.posted(item.channel)  # Slack meters the share like a post: keep the channel's pace
        return _refusal(exc, pacer, item.channel, shared=True)
    except Exception as exc:  # noqa: BLE001 - it may have been shared: look before sharing again
        pacer.posted(item.channel)
        return Outcome("maybe_sent", error=f"files.completeUploadExternal: {exc}")
    pacer.posted(item.channel)
    return Outcome("posted", ts=file_id)


def _send_bytes(url: str, data: bytes, timeout: float) -> str:
    """POST ``data`` to the upload URL; what went wrong, or "" when Slack answered 200."""
    if not url.startswith(("https://", "http://")):
        return f"no usable upload_url ({url[:60]!r})"
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - Slack's URL
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except Exception as exc:  # noqa: BLE001 - network trouble
        return f"{type(exc).__name__}: {exc}"
    return "" if status == 200 else f"HTTP {status}"


def _refusal(exc: SlackApiError, pacer: Pacer, channel: str, shared: bool) -> Outcome:
    """An error answer as an Outcome; before the share (``shared`` False) a 5xx shared nothing."""
    outcome = classify(exc)
    if outcome.kind == "rate_limited":
        pacer.post_limited(channel, outcome.wait)
    elif outcome.error in HOPELESS:
        return Outcome("refused", error=outcome.error)
    elif outcome.kind == "maybe_sent" and not shared:
        return Outcome("not_sent", error=outcome.error)
    return outcome

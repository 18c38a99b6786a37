"""Send requests to the app exactly as Slack does: signed, form-encoded, with all of Slack's fields.

- ``sign`` computes Slack's v0 signature: HMAC-SHA256 of ``v0:{timestamp}:{body}``
  with the signing secret, sent as ``X-Slack-Signature: v0=<hex>`` with
  ``X-Slack-Request-Timestamp``.
- slash commands are ``application/x-www-form-urlencoded`` with Slack's fields;
- block_actions and view_submission are ``payload=<json>`` in the same encoding.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

EVENTS_PATH = "/slack/events"
_ids = itertools.count(1)


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request-signing headers for ``body``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    base = f"v0:{timestamp}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def trigger_id() -> str:
    return f"{next(_ids)}{int(time.time() * 1000)}.1234567890.{hashlib.md5(str(time.time()).encode()).hexdigest()}"


@dataclass
class Sent:
    """A response and how long the app took to give it."""

    response: httpx.Response
    seconds: float

    @property
    def status(self) -> int:
        return self.response.status_code

    def json(self) -> Any:
        return self.response.json() if self.response.content else None

    @property
    def text(self) -> str:
        """The ephemeral reply's text (blocks' text joined), or '' for an empty ack."""
        body = self.json()
        if not body:
            return ""
        parts = [body.get("text") or ""]
        for block in body.get("blocks") or []:
            text = (block.get("text") or {}).get("text")
            if text:
                parts.append(text)
            for field in block.get("fields") or []:
                parts.append(field.get("text", ""))
        return "\n".join(parts)


class SlackSender:
    """Plays Slack's part towards the app's /slack/events endpoint."""

    def __init__(self, base_url: str, signing_secret: str, team_id: str = "T0LAXAI", team_domain: str = "laxai",
                 api_app_id: str = "A0LAXAI", enterprise_id: str | None = None, timeout: float = 30.0):
        self.url = base_url.rstrip("/") + EVENTS_PATH
        self.secret = signing_secret
        self.team_id, self.team_domain, self.api_app_id = team_id, team_domain, api_app_id
        self.enterprise_id = enterprise_id
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    # -- raw --------------------------------------------------------------------

    def post(self, body: str, *, timestamp: int | None = None, secret: str | None = None,
             headers: dict[str, str] | None = None) -> Sent:
        signed = sign(secret or self.secret, body, timestamp)
        all_headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Slackbot 1.0",
                       **signed, **(headers or {})}
        started = time.monotonic()
        response = self.http.post(self.url, content=body.encode(), headers=all_headers)
        return Sent(response, time.monotonic() - started)

    # -- slash command -------------------------------------------------------------

    def command_body(self, text: str, user: str = "U0ALICE", channel: str = "C0TRAIN", command: str = "/train",
                     trigger: str | None = None, user_name: str | None = None) -> str:
        fields = {
            "token": "verification-token-unused",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel,
            "channel_name": "training",
            "user_id": user,
            "user_name": user_name or user.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": f"https://hooks.slack.com/commands/{self.team_id}/{next(_ids)}/xyz",
            "trigger_id": trigger or trigger_id(),
        }
        if self.enterprise_id:
            fields.update(enterprise_id=self.enterprise_id, enterprise_name="Grid")
        return urllib.parse.urlencode(fields)

    def command(self, text: str, **kwargs: Any) -> Sent:
        return self.post(self.command_body(text, **kwargs))

    # -- interactivity ----------------------------------------------------------------

    def _user(self, user: str) -> dict[str, Any]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": self.team_id}

    def _payload(self, payload: dict[str, Any]) -> str:
        return urllib.parse.urlencode({"payload": json.dumps(payload)})

    def action_body(self, message: dict[str, Any], action_id: str, user: str = "U0ALICE",
                    channel: str = "C0TRAIN") -> str:
        """A block_actions payload for a click on the button ``action_id`` of ``message`` (as Slack has it)."""
        button, block_id = None, None
        for block in message.get("blocks") or []:
            for element in block.get("elements") or []:
                if element.get("action_id") == action_id:
                    button, block_id = element, block.get("block_id", "b")
        if button is None:
            raise AssertionError(f"no {action_id} button on the message: {json.dumps(message)[:500]}")
        thread_ts = message.get("thread_ts")
        action = {"action_id": action_id, "block_id": block_id, "text": button["text"], "type": "button",
                  "action_ts": f"{time.time():.6f}"}
        if "value" in button:
            action["value"] = button["value"]
        if "style" in button:
            action["style"] = button["style"]
        container = {"type": "message", "message_ts": message["ts"], "channel_id": channel, "is_ephemeral": False}
        if thread_ts:
            container["thread_ts"] = thread_ts
        payload = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": self.api_app_id,
            "token": "verification-token-unused",
            "container": container,
            "trigger_id": trigger_id(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": {"id": self.enterprise_id, "name": "Grid"} if self.enterprise_id else None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": "training"},
            "message": {"type": "message", "user": message.get("user"), "ts": message["ts"],
                        "bot_id": message.get("bot_id"), "text": message.get("text"),
                        "blocks": message.get("blocks"), **({"thread_ts": thread_ts} if thread_ts else {})},
            "state": {"values": {}},
            "response_url": f"https://hooks.slack.com/actions/{self.team_id}/{next(_ids)}/xyz",
            "actions": [action],
        }
        return self._payload(payload)

    def click(self, message: dict[str, Any], action_id: str, **kwargs: Any) -> Sent:
        return self.post(self.action_body(message, action_id, **kwargs))

    def view_body(self, view: dict[str, Any], changes: dict[str, str] | None = None, user: str = "U0ALICE") -> str:
        """A view_submission of ``view`` (as views.open returned it), initial values edited by ``changes``."""
        changes = changes or {}
        values: dict[str, Any] = {}
        for block in view.get("blocks") or []:
            if block.get("type") != "input":
                continue
            element = block["element"]
            kind = element["type"]
            block_id = block["block_id"]
            if kind == "static_select":
                chosen = changes.get(block_id, (element.get("initial_option") or {}).get("value"))
                option = next((o for o in element["options"] if o["value"] == chosen), None)
                if option is None and chosen is not None:  # Slack would never send this; tests may
                    option = {"text": {"type": "plain_text", "text": chosen}, "value": chosen}
                state = {"type": kind, "selected_option": option}
            else:
                state = {"type": kind, "value": changes.get(block_id, element.get("initial_value"))}
            values[block_id] = {element["action_id"]: state}
        submitted = {**view, "state": {"values": values}}
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": self._user(user),
            "api_app_id": self.api_app_id,
            "token": "verification-token-unused",
            "trigger_id": trigger_id(),
            "view": submitted,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": {"id": self.enterprise_id, "name": "Grid"} if self.enterprise_id else None,
        }
        return self._payload(payload)

    def submit_view(self, view: dict[str, Any], changes: dict[str, str] | None = None, user: str = "U0ALICE") -> Sent:
        return self.post(self.view_body(view, changes, user))

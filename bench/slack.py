"""What the Slack items share: the fake Slack Web API, the service's Slack settings, signed /train requests.

The fake (``tests/fakes/fake_slack.py``) runs in the bench process on a free
port and enforces Slack's limits (chat.postMessage ~1/s per channel with a
small burst, chat.update ~50/min per workspace: HTTP 429 with Retry-After past
them); the service's WebClient points at it through SLACK_API_URL. Requests are
signed like Slack's (``tests/slack/slack_requests.py``). The notifier runs with
its production pacing (bot/config.py defaults), not the tests' faster one.
"""

from __future__ import annotations

from typing import Any

from bench import loadgen
from bench.core import NotHere

BOT_TOKEN = "xoxb-0000-bench-bot-token"
SIGNING_SECRET = "bench-signing-secret-0123456789ab"
TEAM = "T0BENCH"
CHANNEL = "C0BENCH"
TINY = "epochs=1 imgsz=32 dataset=synthetic:8 arch=yolov8n"


def need_bot() -> None:
    """Raise NotHere unless the Slack front end and its test helpers are in this checkout."""
    try:
        import bot.extension  # noqa: F401 - only whether it is there
        import tests.fakes.fake_slack  # noqa: F401
        import tests.slack.slack_requests  # noqa: F401
    except ImportError as exc:
        raise NotHere(f"the Slack front end (bot/) or its fakes are not in this checkout: {exc}") from exc


def fake_slack() -> Any:
    from tests.fakes.fake_slack import FakeSlack

    return FakeSlack(token=BOT_TOKEN, team_id=TEAM)


def slack_env(fake: Any) -> dict[str, str]:
    """Service environment: Slack on, against ``fake``; notifier pacing left at its defaults."""
    return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url}


def command_request(port: int, text: str = TINY, user: str = "U0BENCH", channel: str = CHANNEL) -> bytes:
    """A freshly signed ``/train`` slash command as raw HTTP (new trigger id, so a new job each time)."""
    from tests.slack.slack_requests import EVENTS_PATH, sign

    body = sender(port).command_body(text, user=user, channel=channel)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Slackbot 1.0",
               **sign(SIGNING_SECRET, body)}
    return loadgen.request("POST", EVENTS_PATH, f"127.0.0.1:{port}", body.encode(), headers)


_senders: dict[int, Any] = {}


def sender(port: int) -> Any:
    """A SlackSender for the service on ``port`` (it builds Slack's form bodies)."""
    from tests.slack.slack_requests import SlackSender

    if port not in _senders:
        _senders[port] = SlackSender(f"http://127.0.0.1:{port}", SIGNING_SECRET, team_id=TEAM)
    return _senders[port]


def close_senders() -> None:
    for each in _senders.values():
        each.close()
    _senders.clear()

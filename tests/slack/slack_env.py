"""Names and secrets the Slack tests share (test values, not real credentials)."""

from __future__ import annotations

BOT_TOKEN = "xoxb-1111-2222-testbottoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APP_TOKEN = "xapp-1-A0LAXAI-3333-testapptoken"
TEAM = "T0LAXAI"
CHANNEL = "C0TRAIN"
ALICE, BOB, ADMIN = "U0ALICE", "U0BOB", "U0ADMIN"

# The notifier's pacing for tests: Slack's real limits, but quicker card edits.
FAST_NOTIFIER = {
    "SLACK_POST_INTERVAL": "1.05",
    "SLACK_CARD_MIN_INTERVAL": "0.5",
    "SLACK_UPDATES_PER_MINUTE": "45",
}


def slack_env(fake, **extra: str) -> dict[str, str]:
    """Environment for the service: Slack configured against ``fake``."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "SLACK_ADMIN_USERS": ADMIN,
        **FAST_NOTIFIER,
        **extra,
    }

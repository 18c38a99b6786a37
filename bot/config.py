"""Slack settings: tokens, the Web API address, admins and allowed channels.

Read from the same env file as ``orchestrator.config`` (``default_config_file()``),
then the environment. Secrets are SecretStr so they never print in reprs or logs.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator.config import default_config_file
from orchestrator.config_lists import split_commas
from orchestrator.serve import StartupError

USER_ID = re.compile(r"[UW][A-Z0-9]+")  # Slack user ids (W: Enterprise Grid)
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]+")  # public, private (legacy G) and direct channels

# A comma-separated list in the environment ("U1, U2"); NoDecode keeps pydantic-settings
# from reading it as JSON first, so the validators below see the raw text.
SlackIds = Annotated[frozenset[str], NoDecode]


def parse_ids(raw: Any, pattern: re.Pattern[str], example: str) -> frozenset[str]:
    """"U1, U2,U3" (or a JSON list, or a list) -> {"U1", "U2", "U3"}; blanks ignored.

    Ids are upper-cased (Slack's are); anything else, a channel *name* such as
    ``#general`` say, is refused so a typo fails at start instead of locking everyone out.
    """
    if isinstance(raw, str) and raw.strip().startswith("["):
        raw = json.loads(raw)
    given = split_commas(raw)
    bad = [part for part in given if not pattern.fullmatch(part.upper())]
    if bad:
        raise ValueError(f"{', '.join(repr(b) for b in bad)} is not a Slack id; give comma-separated ids "
                         f"such as {example} (shown in Slack under the profile's or channel's details)")
    return frozenset(part.upper() for part in given)


class SlackSettings(BaseSettings):
    """Everything the Slack front end needs; unset tokens mean "Slack is off"."""

    model_config = SettingsConfigDict(env_file_encoding="utf-8", extra="ignore", case_sensitive=True)

    SLACK_BOT_TOKEN: SecretStr | None = None  # xoxb-...
    SLACK_SIGNING_SECRET: SecretStr | None = None  # verifies every HTTP request from Slack
    SLACK_APP_TOKEN: SecretStr | None = None  # xapp-..., only for Socket Mode
    SLACK_API_URL: str = "https://slack.com/api/"  # tests point this at a fake Web API
    SLACK_ADMIN_USERS: SlackIds = frozenset()  # user ids that may cancel or retry anyone's job
    SLACK_ALLOWED_CHANNELS: SlackIds = frozenset()  # channel ids for /train, buttons and the form; empty: all

    # --- notifier pacing (Slack's published limits, with a little headroom) ---
    SLACK_POST_INTERVAL: float = Field(1.1, ge=0)  # seconds between posts in one channel (~1/s)
    SLACK_UPDATES_PER_MINUTE: float = Field(45, gt=0)  # chat.update is Tier 3 (~50/min per workspace)
    SLACK_CARD_MIN_INTERVAL: float = Field(3.0, ge=0)  # one card is edited at most this often
    # Only the holder of this lease sends (bot/notifier/lease.py): several instances on one store share
    # Slack's pace. A holder that dies is replaced after this long.
    SLACK_NOTIFIER_LEASE_SECONDS: float = Field(15.0, ge=2, le=600)
    SLACK_FINAL_GIVE_UP: float = Field(1800, gt=0)  # keep retrying a final reply this long
    SLACK_REPLY_GIVE_UP: float = Field(600, gt=0)  # ... and other replies this long
    SLACK_HTTP_TIMEOUT: float = Field(10, gt=0)  # one Web API call

    @field_validator("SLACK_ADMIN_USERS", mode="before")
    @classmethod
    def _user_ids(cls, value: Any) -> frozenset[str]:
        return parse_ids(value, USER_ID, "U0123ABCD")

    @field_validator("SLACK_ALLOWED_CHANNELS", mode="before")
    @classmethod
    def _channel_ids(cls, value: Any) -> frozenset[str]:
        return parse_ids(value, CHANNEL_ID, "C0123ABCD")

    @property
    def configured(self) -> bool:
        """Both secrets the HTTP endpoint needs are present and non-blank."""
        return bool(self.bot_token and self.signing_secret)

    @property
    def bot_token(self) -> str:
        return self.SLACK_BOT_TOKEN.get_secret_value().strip() if self.SLACK_BOT_TOKEN else ""

    @property
    def signing_secret(self) -> str:
        return self.SLACK_SIGNING_SECRET.get_secret_value().strip() if self.SLACK_SIGNING_SECRET else ""

    @property
    def app_token(self) -> str:
        return self.SLACK_APP_TOKEN.get_secret_value().strip() if self.SLACK_APP_TOKEN else ""

    @property
    def api_url(self) -> str:
        # WebClient joins base_url + method name, so it must end with a slash.
        url = self.SLACK_API_URL.strip() or "https://slack.com/api/"
        return url if url.endswith("/") else url + "/"

    @property
    def admin_users(self) -> frozenset[str]:
        return self.SLACK_ADMIN_USERS

    @property
    def allowed_channels(self) -> frozenset[str] | None:
        """None when every channel is allowed."""
        return self.SLACK_ALLOWED_CHANNELS or None

    def secrets(self) -> list[str]:
        """The secret values, for log redaction."""
        return [s for s in (self.bot_token, self.signing_secret, self.app_token) if s]


def load_slack_settings(**overrides: object) -> SlackSettings:
    """Settings from the orchestrator's env file, then the environment, then overrides.

    A bad value stops ``laxai serve`` with one line per variable (no traceback, no input
    echoed: a token could be in it).
    """
    try:
        return SlackSettings(_env_file=default_config_file(), **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise StartupError(f"bad Slack setting: {problems}") from None

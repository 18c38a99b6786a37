"""The Bolt app: assembled once over a Runtime's JobService, with the listeners of
``bot.listeners`` registered on it.

Every listener answers inside Slack's 3 seconds (``process_before_response``: the
ack goes out when the listener returns, and nothing runs after it). Authorization
is local (the bot token from settings, the bot's ids from one auth.test at
start-up, off the request path), so a request costs no Web API call to accept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from orchestrator.backends import gpu_types_available
from orchestrator.domain.job import Job
from orchestrator.runtime import Runtime

from bot.access import Access
from bot.clients import bolt_client, guarded_logger
from bot.config import SlackSettings
from bot.listeners import register
from bot.listeners.parts import FrontEndParts

log = logging.getLogger(__name__)

# Each logger gets its own redaction filter (filters don't inherit).
LISTENER_LOGGERS = ("bot.listeners.slash", "bot.listeners.buttons", "bot.listeners.submit", "bot.listeners.parts")


class SlackFrontEnd:
    """Builds the Bolt App over a Runtime's JobService."""

    def __init__(self, runtime: Runtime, settings: SlackSettings, client: WebClient,
                 view: Callable[[Job], Job] | None = None):
        self.settings = settings
        self.client = client  # bot token; for auth.test, views.open and ephemeral refusals
        self.identity: dict[str, Any] = {}
        self.parts = FrontEndParts(service=runtime.jobs, access=Access(runtime.jobs, settings),
                                   settings=settings, client=client, default_gpu=runtime.settings.GPU_TYPE,
                                   gpu_types=gpu_types_available(runtime.settings),
                                   **({"view": view} if view else {}))
        for name in LISTENER_LOGGERS:
            guarded_logger(name, settings)
        bolt_logger = guarded_logger("bot.slack.bolt", settings)
        bolt_logger.addFilter(_QuietTokenWarning())
        self.app = App(
            client=bolt_client(settings),
            signing_secret=settings.signing_secret,
            process_before_response=True,  # answer only after the listener ran: nothing runs after the response
            authorize=local_authorize(settings, self.identity),  # no auth.test in the request path
            logger=bolt_logger,
            raise_error_for_unhandled_request=False,
        )
        register(self.app, self.parts)
        self.app.error(on_error)

    def fetch_identity(self) -> None:
        """auth.test once, off the request path (start-up); tells the bot's own ids."""
        try:
            response = self.client.auth_test()
        except Exception as exc:  # noqa: BLE001 - Slack may be unreachable at start-up
            log.warning("Slack auth.test failed (%s); continuing without the bot's ids", exc)
            return
        self.identity.update({k: response.get(k) for k in ("team_id", "user_id", "bot_id", "enterprise_id")})
        log.info("Slack bot is %s in team %s", self.identity.get("user_id"), self.identity.get("team_id"))

    def start(self) -> None:
        threading.Thread(target=self.fetch_identity, name="slack-auth-test", daemon=True).start()


def local_authorize(settings: SlackSettings, identity: dict[str, Any]) -> Callable[..., AuthorizeResult]:
    """Bolt's authorize hook: our one bot token for every workspace, and the bot's ids once
    ``identity`` has them. A plain function: Bolt passes its arguments by name."""

    def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=settings.bot_token,
                               bot_id=identity.get("bot_id"), bot_user_id=identity.get("user_id"), user_id=user_id)

    return authorize


def on_error(error: Exception) -> None:
    log.error("Slack request failed: %s: %s", type(error).__name__, error)


class _QuietTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment and then warns that our client
    (which deliberately has no token: authorize supplies it) wins. That is the intent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()

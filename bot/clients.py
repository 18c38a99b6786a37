"""Web API clients for the bot, and loggers behind the redaction filter (``orchestrator.logs``).

Two clients on purpose:
- the app's client (ephemeral replies, views.open) retries 429s by itself, since
  the default WebClient does not and these calls are few and urgent;
- the notifier's client retries nothing: the notifier schedules its own retries
  around Retry-After and must know when a post may or may not have gone out.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from orchestrator.logs import RedactingFilter

from bot.config import SlackSettings


class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retries a 429 after its Retry-After, but only when that still fits the 3 s Slack gives
    an interaction; a longer wait fails fast instead of making Slack show a timeout."""

    def __init__(self, max_retry_count: int = 1, max_wait: float = 1.5):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[no-untyped-def]
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        if not any(name.lower() == "retry-after" for name in (response.headers or {})):
            return True
        wait = retry_after(response.headers)
        return wait is not None and wait <= self.max_wait


def retry_after(headers: object) -> float | None:
    """Seconds a 429's ``Retry-After`` header asks for (a list's first value; any header case);
    None when it is missing or not a number. The one parser for the app's client and the notifier."""
    for name, value in dict(headers or {}).items():  # type: ignore[call-overload]
        if str(name).lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def guarded_logger(name: str, settings: SlackSettings) -> logging.Logger:
    """A logger that redacts ``settings``' secrets from every record logged to it."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter(settings.secrets()))
    return logger


def app_client(settings: SlackSettings) -> WebClient:
    """For the request path: short timeout, retries 429 (Retry-After) and dropped connections."""
    return WebClient(
        token=settings.bot_token,
        base_url=settings.api_url,
        timeout=min(settings.SLACK_HTTP_TIMEOUT, 2.5),  # Slack wants our answer within 3 s
        logger=guarded_logger("bot.slack.web", settings),
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1),
                        CappedRateLimitRetryHandler(max_retry_count=1)],
    )


def notifier_client(settings: SlackSettings) -> WebClient:
    """For the notifier: no built-in retries (it schedules its own)."""
    return WebClient(
        token=settings.bot_token,
        base_url=settings.api_url,
        timeout=settings.SLACK_HTTP_TIMEOUT,
        logger=guarded_logger("bot.slack.notifier-web", settings),
        retry_handlers=[],
    )


def bolt_client(settings: SlackSettings) -> WebClient:
    """The client Bolt holds: no token (authorization supplies it per request), same API URL."""
    return WebClient(token=None, base_url=settings.api_url, timeout=min(settings.SLACK_HTTP_TIMEOUT, 2.5),
                     logger=guarded_logger("bot.slack.bolt-web", settings),
                     retry_handlers=[CappedRateLimitRetryHandler(max_retry_count=1)])

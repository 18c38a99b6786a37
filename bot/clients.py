"""Web API clients for the bot, and a log filter that keeps secrets out of logs.

Two clients on purpose:
- the app's client (ephemeral replies, views.open) retries 429s by itself, since
  the default WebClient does not and these calls are few and urgent;
- the notifier's client retries nothing: the notifier schedules its own retries
  around Retry-After and must know when a post may or may not have gone out.
"""

from __future__ import annotations

import logging
import re

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.config import SlackSettings

# Slack token shapes, redacted even when they aren't ours (a pasted token in a log line).
TOKEN_PATTERN = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+")


class RedactSecrets(logging.Filter):
    """Replaces the configured secrets and anything shaped like a Slack token."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return TOKEN_PATTERN.sub("[redacted-token]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to fix
            return True
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            text = self._clean(str(error))
            if text != str(error):  # drop the traceback rather than print a secret
                record.exc_info, record.exc_text = None, None
                record.msg = f"{record.msg} ({type(error).__name__}: {text})"
        return True


class CappedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retries a 429 after its Retry-After, but only when that still fits the 3 s Slack gives
    an interaction; a longer wait fails fast instead of making Slack show a timeout."""

    def __init__(self, max_retry_count: int = 1, max_wait: float = 1.5):
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[no-untyped-def]
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        for name, values in (response.headers or {}).items():
            if name.lower() == "retry-after":
                value = values[0] if isinstance(values, list) else values
                try:
                    return float(value) <= self.max_wait
                except (TypeError, ValueError):
                    return False
        return True


def guarded_logger(name: str, settings: SlackSettings) -> logging.Logger:
    """A logger that redacts ``settings``' secrets from every record logged to it."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets(settings.secrets()))
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

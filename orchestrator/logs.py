"""Logging setup with a redaction filter, so tokens and secrets never reach a log line.

Secrets are redacted whatever their source: the environment, the ``LAXAI_CONFIG``
file (read the way Settings reads it) and every SecretStr field of the Settings
the process runs with.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.config import default_config_file

# Environment variables whose values are secrets wherever they appear.
SECRET_ENV = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "LAXAI_API_TOKENS", "LAXAI_TOKEN",
              "WANDB_API_KEY")
# Shapes of secrets even when we were not told their values.
SECRET_PATTERNS = (re.compile(r"xox[abposr]-[A-Za-z0-9-]+"), re.compile(r"xapp-[A-Za-z0-9-]+"),
                   re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"))
REDACTED = "[redacted]"


class SecretSources(BaseSettings):
    """The SECRET_ENV variables from the environment and the config file, as Settings reads them."""

    model_config = SettingsConfigDict(env_file_encoding="utf-8", extra="ignore", case_sensitive=True)

    SLACK_BOT_TOKEN: SecretStr | None = None
    SLACK_SIGNING_SECRET: SecretStr | None = None
    SLACK_APP_TOKEN: SecretStr | None = None
    LAXAI_API_TOKENS: SecretStr | None = None
    LAXAI_TOKEN: SecretStr | None = None
    WANDB_API_KEY: SecretStr | None = None


def _secrets_in(value: object) -> list[str]:
    """The SecretStr values in a field's value, also inside tuples and models (LAXAI_API_TOKENS)."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, BaseModel):
        return [secret for _name, item in value for secret in _secrets_in(item)]
    if isinstance(value, (tuple, list)):
        return [secret for item in value for secret in _secrets_in(item)]
    return []


def _secret_fields(model: BaseModel) -> list[tuple[str, str]]:
    """(name, value) of every secret in the model's set fields."""
    return [(name, secret) for name, value in model for secret in _secrets_in(value)]


def _configured() -> list[tuple[str, str]]:
    try:
        return _secret_fields(SecretSources(_env_file=default_config_file()))  # type: ignore[call-arg]
    except Exception:  # noqa: BLE001 - an unreadable file still leaves the environment's secrets
        return []


def secret_values(extra: list[str] | None = None, settings: Iterable[BaseModel] = ()) -> list[str]:
    """Every secret value to redact, longest first."""
    named = [(name, os.environ.get(name, "")) for name in SECRET_ENV]
    named += _configured()
    for model in settings:
        named += _secret_fields(model)
    values = []
    for name, raw in named:
        values.append(raw)
        if name == "LAXAI_API_TOKENS":  # "token:tenant,..." - the tokens are the secret part
            values.extend(part.split(":", 1)[0] for part in raw.split(","))
    values.extend(extra or [])
    return sorted({v.strip() for v in values if v and len(v.strip()) >= 6}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message and traceback with secrets removed: the values
    given (six characters or more) and anything shaped like a token. The one redaction filter:
    on the root handlers here and on the bot's loggers (``bot.clients.guarded_logger``)."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to fix
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def configure_logging(level: str = "INFO", extra_secrets: list[str] | None = None,
                      settings: Iterable[BaseModel] = ()) -> None:
    """Root logging to stderr, every handler behind the redaction filter (secrets of the
    environment, the config file and ``settings``)."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redactor = RedactingFilter(secret_values(extra_secrets, settings))
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)

"""One redaction filter (orchestrator/logs.py) for the root handlers and the bot's loggers."""

from __future__ import annotations

import logging

from bot.clients import guarded_logger
from bot.config import SlackSettings
from orchestrator.logs import RedactingFilter

SIGNING = "signing-secret-abcdef"
BOT = "xoxb-111-222-abcdef"


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_the_bots_guarded_logger_uses_the_one_filter_and_redacts_messages_and_tracebacks():
    settings = SlackSettings(SLACK_BOT_TOKEN=BOT, SLACK_SIGNING_SECRET=SIGNING)
    logger = guarded_logger("tests.unit.redaction-probe", settings)
    guarded_logger("tests.unit.redaction-probe", settings)  # a second call adds no second filter
    assert [type(f) for f in logger.filters] == [RedactingFilter]
    sink = Collect()
    logger.addHandler(sink)
    logger.propagate = False
    try:
        logger.warning("tokens %s and %s and a stranger's xapp-1-A0-zzz", BOT, SIGNING)
        try:
            raise RuntimeError(f"Slack refused {SIGNING}")
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(sink)
    text = "\n".join(sink.lines)
    assert BOT not in text and SIGNING not in text and "xapp-1-A0-zzz" not in text
    assert "tokens [redacted] and [redacted] and a stranger's [redacted]" in text
    assert "RuntimeError: Slack refused [redacted]" in text  # the traceback stays, redacted
    assert RedactingFilter(["short"]).secrets == []  # too short to redact safely

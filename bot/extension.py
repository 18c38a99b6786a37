"""The ``laxai.extensions`` hook: plugs the Slack front end into ``laxai serve``.

``install(app, runtime)`` mounts the Bolt app at ``POST /slack/events`` (slash
commands, interactivity, options), registers the notifier as a background
service, gives the job service the hook that finds a retry's thread (the
original's card, from the ``slack_threads`` record), and, with
``runtime.socket_mode``, connects over Socket Mode
with SLACK_APP_TOKEN as well. Its parts are on ``app.state.slack`` (a ``SlackParts``). It declines (returns False) when Slack isn't
configured, so the same image runs with or without Slack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response

from orchestrator.runtime import Runtime

from bot.app import SlackFrontEnd
from bot.clients import app_client, guarded_logger, notifier_client
from bot.config import SlackSettings, load_slack_settings
from bot.notifier import Notifier
from bot.threads import open_threads

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY = 1024 * 1024  # Slack's payloads (a full modal view) stay far below this


@dataclass
class SlackParts:
    """What the Slack front end added to a service (``app.state.slack``), for tests and operators."""

    notifier: Notifier
    front_end: SlackFrontEnd
    socket_mode: Any = None  # the SocketModeHandler, when connected over Socket Mode


class SlackEvents:
    """``POST /slack/events`` as a plain ASGI app, dispatching Bolt on a worker thread.

    slack_bolt's own FastAPI adapter calls the (synchronous) Bolt app inside the
    event loop, so one slow listener would stall every other request; here the loop
    only reads the body and the listener runs in Starlette's thread pool. The
    response is still sent only after the listener finished
    (process_before_response). A plain ASGI endpoint, not a FastAPI route: every
    ack skips FastAPI's route matching and per-request wrappers (the exit stack,
    the exception wrapper), a third of the event loop's samples per ack in a
    py-spy profile at 50 concurrent; the p99 moved by ~9 ms (BENCHMARKS.md, item
    1). The app's middleware (error handling, body limit) still runs first.
    """

    def __init__(self, bolt_app: Any) -> None:
        self.bolt_app = bolt_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        if len(body) > MAX_BODY:
            response = Response(status_code=413, content="payload too large")
        else:
            bolt_response = await run_in_threadpool(self.bolt_app.dispatch, to_bolt_request(request, body))
            response = to_starlette_response(bolt_response)
        await response(scope, receive, send)


def install(app: FastAPI, runtime: Runtime, settings: SlackSettings | None = None) -> bool:
    """Add the Slack front end to the service; False (and a log line saying why) when unconfigured."""
    settings = settings or load_slack_settings()
    for name in ("bot", "bot.app", "bot.notifier", "bot.extension", "slack_bolt", "slack_sdk"):
        guarded_logger(name, settings)  # filters don't inherit: each logger gets its own
    if not settings.configured:
        missing = [name for name, value in (("SLACK_BOT_TOKEN", settings.bot_token),
                                            ("SLACK_SIGNING_SECRET", settings.signing_secret)) if not value]
        log.info("Slack front end not installed: %s not set", " and ".join(missing))
        return False

    threads = open_threads(runtime)
    notifier = Notifier(runtime, settings, notifier_client(settings), threads=threads)
    front = SlackFrontEnd(runtime, settings, app_client(settings), view=notifier.ledger.view)
    # Signed by Slack and verified by Bolt: no API token on this route. First in the
    # table, so an ack does not walk the REST routes' patterns before it.
    app.router.routes.insert(0, Route(EVENTS_PATH, SlackEvents(front.app), methods=["POST"],
                                      include_in_schema=False))

    # The core never reads Slack state: a retry of a Slack job asks this hook for its thread (the card).
    runtime.jobs.give_retries_threads("slack", lambda original: notifier.ledger.read(original).card_ts)

    def start() -> None:
        front.start()
        notifier.start()

    def stop() -> None:
        notifier.stop()
        threads.close()

    runtime.add_service("slack-notifier", start, stop)
    parts = SlackParts(notifier, front)
    app.state.slack = parts
    if runtime.socket_mode:
        parts.socket_mode = _install_socket_mode(runtime, front, settings)
    log.info("Slack front end installed at %s (Web API %s)", EVENTS_PATH, settings.api_url)
    return True


def _install_socket_mode(runtime: Runtime, front: SlackFrontEnd, settings: SlackSettings) -> Any:
    """Receive the same requests over a WebSocket (no public URL needed)."""
    if not settings.app_token:
        log.error("--socket-mode needs SLACK_APP_TOKEN (an xapp- token with connections:write); "
                  "serving HTTP only")
        return None
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    socket_handler = SocketModeHandler(front.app, app_token=settings.app_token,
                                       logger=guarded_logger("bot.slack.socket", settings))

    def start() -> None:
        try:
            socket_handler.connect()  # returns at once; the client keeps its own threads
        except Exception as exc:  # noqa: BLE001 - HTTP keeps working; Socket Mode retries on reconnect
            log.error("Slack Socket Mode could not connect: %s", exc)

    def stop() -> None:
        try:
            socket_handler.close()
        except Exception:  # noqa: BLE001
            log.warning("closing Socket Mode failed", exc_info=True)

    runtime.add_service("slack-socket-mode", start, stop)
    return socket_handler

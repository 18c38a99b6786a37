"""Endpoints that drive the dispatcher: Pub/Sub push (``/pubsub/push``) and Cloud Scheduler (``/tasks/tick``).

Both are called by Google with an OIDC token (``orchestrator.api.oidc``; audiences
PUSH_AUDIENCE and TICK_AUDIENCE) and run one dispatcher pass synchronously. A
pass takes seconds, never the length of training: it claims a job (compare-and-set)
and asks the launcher to start it, or leaves it queued when no slot is free. The
store is the truth, so a push is only a wake-up:

- 204 after the pass, whether it launched the job or left it queued (over a cap,
  already running, cancelled...). Duplicate deliveries are harmless: the claim is
  a compare-and-set, and passes in one process run one at a time. A push usually
  arrives right after its job was created, too young to claim under the write
  budget (stores/write_budget.py): the handler waits out that deferral once and
  runs one more pass, so a push still starts its job.
- 204 too when no pass could run here (another instance holds the dispatcher lock,
  or this process's pass ran past PASS_WAIT): the job stays queued, and the
  dispatcher loop of every instance ticks every DISPATCH_INTERVAL anyway.
- 204 with a log line (and ``X-LaxAI-Ignored``) for a permanently malformed
  envelope: not JSON, no message, data that is not base64 JSON with a task_id.
  Pub/Sub redelivers anything but 2xx, so an error answer would only bring it back
  until it dead-letters; it carries nothing the store does not already know.
- 503 (with Retry-After) when the store fails: transient, Pub/Sub retries later.
- 401/403 from the OIDC check, 503 while dispatching is off in this process.

``/tasks/tick`` answers 200 with ``{"ran": bool, "launched": [task_id, ...]}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.api.oidc import require_caller
from orchestrator.dispatcher import Dispatcher

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
PASS_WAIT = 30.0  # seconds a call waits for a pass already running in this process


@dataclass(frozen=True)
class PushMessage:
    task_id: str
    message_id: str
    delivery_attempt: int | None


class Malformed(ValueError):
    pass


def parse_envelope(body: bytes) -> PushMessage:
    """The task of a push envelope ``{"message": {"data": base64 JSON, ...}, "subscription": ...}``."""
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Malformed("body is not JSON") from exc
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise Malformed("no message object")
    message_id = str(message.get("messageId") or message.get("message_id") or "?")[:100]
    attributes = message.get("attributes") if isinstance(message.get("attributes"), dict) else {}
    task_id = attributes.get("task_id")
    data = message.get("data")
    if isinstance(data, str) and data:
        try:
            decoded = json.loads(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError, RecursionError) as exc:
            raise Malformed(f"message {message_id}: data is not base64 JSON") from exc
        if isinstance(decoded, dict) and decoded.get("task_id") is not None:
            task_id = decoded["task_id"]
    if not isinstance(task_id, str) or not task_id or len(task_id) > 200:
        raise Malformed(f"message {message_id}: no task_id")
    attempt = envelope.get("deliveryAttempt")
    return PushMessage(task_id, message_id, attempt if isinstance(attempt, int) else None)


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher = request.app.state.runtime.dispatcher
    if dispatcher is None:
        raise HTTPException(503, "dispatching is off in this process", headers={"Retry-After": "30"})
    return dispatcher


async def _pass_after_gap(dispatcher: Dispatcher) -> list | None:
    """One pass; if it left a job too young to claim, wait that out (about a second at most) and pass again."""
    launched = await run_in_threadpool(dispatcher.try_tick, PASS_WAIT)
    wait = dispatcher.deferred_for() if launched is not None else None
    if wait is None:
        return launched
    await asyncio.sleep(min(wait, dispatcher.budget.longest_deferral) + 0.01)
    again = await run_in_threadpool(dispatcher.try_tick, PASS_WAIT)
    return launched + again if again is not None else launched


@router.post("/pubsub/push", status_code=204)
async def pubsub_push(request: Request) -> Response:
    """A Pub/Sub push delivery of a wake-up: run one dispatcher pass, then acknowledge."""
    await run_in_threadpool(require_caller, request, "PUSH_AUDIENCE")
    dispatcher = _dispatcher(request)
    try:
        message = parse_envelope(await request.body())
    except Malformed as exc:
        log.warning("dropping a malformed push: %s", exc)
        return Response(status_code=204, headers={"X-LaxAI-Ignored": "malformed envelope"})
    launched = await _pass_after_gap(dispatcher)
    if launched is None:
        log.info("push %s (task %s): no pass here now; the job stays queued for the next one",
                 message.message_id, message.task_id)
    else:
        log.info("push %s (task %s, delivery %s): launched %s", message.message_id, message.task_id,
                 message.delivery_attempt or "?", [job.task_id for job in launched] or "nothing")
    return Response(status_code=204)


@router.post("/tasks/tick")
async def tick(request: Request) -> dict:
    """One dispatcher pass, for Cloud Scheduler: a safety net when no push or loop ran one."""
    await run_in_threadpool(require_caller, request, "TICK_AUDIENCE")
    dispatcher = _dispatcher(request)
    launched = await _pass_after_gap(dispatcher)
    return {"ran": launched is not None, "launched": [job.task_id for job in launched or []]}

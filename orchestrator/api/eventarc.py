"""``POST /eventarc/firestore``: Firestore document writes from Eventarc, turned into change events.

Eventarc delivers ``google.cloud.firestore.document.v1.written`` CloudEvents in
binary content mode: ``ce-*`` headers, and a body that is a
``google.events.cloud.firestore.v1.DocumentEventData`` (protobuf, or its JSON form
with ``application/json``). ``value`` is the job document after the write; its
``job`` map is decoded as the Firestore store decodes it (``stores.job_document``),
and the resulting ``ChangeEvent`` goes to ``runtime.publish_change`` (listeners: see
``orchestrator.runtime``). The caller is checked like a Pub/Sub push (OIDC,
audience EVENTARC_AUDIENCE).

Answers: 204 once delivered. 204 with a log line (and ``X-LaxAI-Ignored``) for
what can never be delivered: another event type, a body that does not decode, a
deleted document, a document outside FIRESTORE_COLLECTION, a record that is not a
job, or any event while LAXAI_CHANGE_FEED is not ``eventarc`` (the store's own
feed serves listeners then; delivering both would double every event). Eventarc
retries anything but 2xx, so an error answer would only bring it back.
"""

from __future__ import annotations

import logging
from datetime import timezone
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.api.oidc import require_caller
from orchestrator.stores.base import ChangeEvent
from orchestrator.stores.job_document import decode_fields

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
WRITTEN = "google.cloud.firestore.document.v1.written"


class Undeliverable(ValueError):
    """An event that can never be delivered: ``reason`` is short and fixed, the message says more."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def plain(value: Any) -> Any:
    """A Firestore ``Value`` protobuf as a plain Python value (maps and arrays recursively)."""
    kind = value.WhichOneof("value_type")
    if kind is None or kind == "null_value":
        return None
    if kind == "map_value":
        return {key: plain(item) for key, item in value.map_value.fields.items()}
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime(tzinfo=timezone.utc)
    if kind == "geo_point_value":
        return {"latitude": value.geo_point_value.latitude, "longitude": value.geo_point_value.longitude}
    return getattr(value, kind)


def decode_event(body: bytes, content_type: str, collection: str) -> ChangeEvent:
    """The change a DocumentEventData body describes; Undeliverable when it describes none."""
    from google.events.cloud.firestore_v1.types import DocumentEventData
    from google.protobuf.json_format import ParseError
    from google.protobuf.message import DecodeError

    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media == "application/json":
            event = DocumentEventData.from_json(body, ignore_unknown_fields=True)
        elif media in ("application/protobuf", "application/x-protobuf", "application/octet-stream"):
            event = DocumentEventData.deserialize(body)
        else:
            raise Undeliverable("unsupported content type", f"{media[:100] or 'none'} is not protobuf or JSON")
    except (DecodeError, ParseError, ValueError, TypeError, RecursionError) as exc:
        if isinstance(exc, Undeliverable):
            raise
        raise Undeliverable("undecodable body", f"not a DocumentEventData ({type(exc).__name__})") from exc
    document = DocumentEventData.pb(event).value
    if not document.name:
        raise Undeliverable("no document", "nothing after the write (a delete)")
    path = document.name.split("/documents/", 1)[-1]
    if path.rsplit("/", 1)[0] != collection:
        raise Undeliverable("other collection", f"document {path[:200]!r} is not in {collection}")
    fields = {key: plain(value) for key, value in document.fields.items()}
    try:
        job, kind = decode_fields(fields)
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError, KeyError: not a job record
        raise Undeliverable("not a job", f"document {path[:200]!r}: {type(exc).__name__}") from exc
    cursor = document.update_time.ToDatetime(tzinfo=timezone.utc) if document.HasField("update_time") else None
    return ChangeEvent(cursor, job, kind)


def _ignored(why: str) -> Response:
    return Response(status_code=204, headers={"X-LaxAI-Ignored": why})


@router.post("/eventarc/firestore", status_code=204)
async def firestore_written(request: Request) -> Response:
    """A Firestore document write, delivered by Eventarc."""
    await run_in_threadpool(require_caller, request, "EVENTARC_AUDIENCE")
    runtime = request.app.state.runtime
    ce_id = request.headers.get("ce-id", "?")[:100]
    if runtime.settings.LAXAI_CHANGE_FEED != "eventarc":
        log.info("eventarc event %s ignored: LAXAI_CHANGE_FEED is %s", ce_id, runtime.settings.LAXAI_CHANGE_FEED)
        return _ignored("change feed is not eventarc")
    ce_type = request.headers.get("ce-type")
    if ce_type != WRITTEN:
        log.warning("eventarc event %s ignored: type %r", ce_id, (ce_type or "")[:100])
        return _ignored("not a document written event")
    body = await request.body()
    try:
        event = decode_event(body, request.headers.get("content-type", ""), runtime.settings.FIRESTORE_COLLECTION)
    except Undeliverable as exc:
        log.warning("eventarc event %s ignored: %s", ce_id, exc)
        return _ignored(exc.reason)
    await run_in_threadpool(runtime.publish_change, event)
    log.debug("eventarc event %s: %s v%d (%s)", ce_id, event.task_id, event.job.version, event.kind)
    return Response(status_code=204)

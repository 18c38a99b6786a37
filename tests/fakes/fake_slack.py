"""A local fake of the Slack Web API: a real HTTP server on a free port, threaded.

Point a WebClient at ``fake.url`` (``SLACK_API_URL``). It implements auth.test,
chat.postMessage, chat.update, chat.postEphemeral, views.open,
conversations.replies and conversations.history, and the external file upload flow
(files.getUploadURLExternal, the upload URL, files.completeUploadExternal: fake_slack_files.py),
answering like Slack does:

- it checks the bearer token (``invalid_auth`` otherwise);
- it enforces Block Kit limits (50 blocks a message, 100 a modal, 3000-char
  section text, 2000-char button value, 75-char button text, 24-char modal
  title...) with ``invalid_blocks``, like Slack;
- it rate-limits with HTTP 429 and a ``Retry-After`` header: chat.postMessage
  past ~1 post/s per channel (a small burst allowed) and chat.update past a
  per-workspace tier limit;
- it can be told to fail (500, 429, or answer slowly after doing the work) for a
  number of calls or a while, for fault tests; a failure can also come *after* the
  work (``after_work``: the message is stored, then the client gets the 500), which
  is what a real Slack 5xx or a lost answer can mean;
- it records every call (method, channel, time, status, error; ``call_log()``), marks
  the answers that were injected faults, and keeps messages per channel and thread,
  with their metadata.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from tests.fakes.fake_slack_files import FileUploads

# Block Kit limits (https://api.slack.com/reference/block-kit).
MAX_MESSAGE_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
MODAL_TITLE = 24
MODAL_BUTTON = 24
PRIVATE_METADATA = 3000
CONTEXT_ELEMENTS = 10
ACTION_ELEMENTS = 25
BLOCK_ID = 255
MESSAGE_TEXT = 40000
INPUT_LABEL = 2000
OPTION_TEXT = 75
OPTION_VALUE = 150
SELECT_OPTIONS = 100

MESSAGE_BLOCKS = {"section", "header", "context", "actions", "divider", "image", "rich_text", "markdown"}
MODAL_BLOCKS = MESSAGE_BLOCKS | {"input"}


@dataclass
class Call:
    """One Web API call as the fake saw it."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float  # time.time()
    mono: float  # time.monotonic()
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)
    injected: bool = False  # an injected fault answered (or delayed the answer), not the fake's own verdict
    performed: bool = False  # the work was done (stored, edited), whatever the answer said

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def channel(self) -> str | None:
        channel = self.args.get("channel")
        return str(channel) if channel else None

    @property
    def error(self) -> str:
        return str(self.response.get("error") or "")


@dataclass
class Fault:
    """Misbehave for some calls: HTTP 500/429, or do the work and answer late ("slow")."""

    status: int
    methods: frozenset[str] | None
    remaining: int | None
    until: float | None
    retry_after: int = 1
    error: str = "fatal_error"
    delay: float = 0.0
    after_work: bool = False  # do the work first, then answer ``status``/``error``

    def matches(self, method: str, now: float) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.until is not None and now > self.until:
            return False
        return self.remaining is None or self.remaining > 0


class Bucket:
    """Token bucket: ``rate`` per second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> tuple[bool, int]:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True, 0
        return False, max(1, math.ceil((1 - self.tokens) / self.rate))


class SlackError(Exception):
    def __init__(self, error: str, status: int = 200, headers: dict[str, str] | None = None, **extra: Any):
        self.error, self.status, self.headers, self.extra = error, status, headers or {}, extra


# -- Block Kit validation ---------------------------------------------------------------


def _text_object(obj: Any, where: str, limit: int, errors: list[str], plain_only: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        errors.append(f"{where}: must be a text object")
        return
    if plain_only and obj["type"] != "plain_text":
        errors.append(f"{where}: must be plain_text")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"{where}: text must be a non-empty string")
    elif len(text) > limit:
        errors.append(f"{where}: must be less than {limit + 1} characters")


def _confirm(obj: Any, where: str, errors: list[str]) -> None:
    if not isinstance(obj, dict):
        errors.append(f"{where}: must be an object")
        return
    _text_object(obj.get("title"), f"{where}.title", 100, errors, plain_only=True)
    _text_object(obj.get("text"), f"{where}.text", 300, errors)
    _text_object(obj.get("confirm"), f"{where}.confirm", 30, errors, plain_only=True)
    _text_object(obj.get("deny"), f"{where}.deny", 30, errors, plain_only=True)
    if obj.get("style") not in (None, "primary", "danger"):
        errors.append(f"{where}.style: must be primary or danger")


def _element(element: Any, where: str, errors: list[str], action_ids: set[str]) -> None:
    if not isinstance(element, dict):
        errors.append(f"{where}: must be an object")
        return
    kind = element.get("type")
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or len(action_id) > BLOCK_ID:
            errors.append(f"{where}.action_id: must be at most {BLOCK_ID} characters")
        elif action_id in action_ids:
            errors.append(f"{where}.action_id: duplicate {action_id!r}")
        action_ids.add(action_id)
    if kind == "button":
        _text_object(element.get("text"), f"{where}.text", BUTTON_TEXT, errors, plain_only=True)
        if "value" in element and (not isinstance(element["value"], str) or len(element["value"]) > BUTTON_VALUE):
            errors.append(f"{where}.value: must be less than {BUTTON_VALUE + 1} characters")
        if "url" in element and (not isinstance(element["url"], str) or len(element["url"]) > BUTTON_URL):
            errors.append(f"{where}.url: must be less than {BUTTON_URL + 1} characters")
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"{where}.style: must be primary or danger")
        if "confirm" in element:
            _confirm(element["confirm"], f"{where}.confirm", errors)
    elif kind == "static_select":
        options = element.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= SELECT_OPTIONS:
            errors.append(f"{where}.options: must hold 1 to {SELECT_OPTIONS} options")
            return
        values = []
        for i, option in enumerate(options):
            _text_object((option or {}).get("text"), f"{where}.options[{i}].text", OPTION_TEXT, errors,
                         plain_only=True)
            value = (option or {}).get("value")
            if not isinstance(value, str) or len(value) > OPTION_VALUE:
                errors.append(f"{where}.options[{i}].value: must be at most {OPTION_VALUE} characters")
            values.append(value)
        initial = element.get("initial_option")
        if initial is not None and initial.get("value") not in values:
            errors.append(f"{where}.initial_option: must be one of the options")
    elif kind == "plain_text_input":
        if "initial_value" in element and not isinstance(element["initial_value"], str):
            errors.append(f"{where}.initial_value: must be a string")
        if "placeholder" in element:
            _text_object(element["placeholder"], f"{where}.placeholder", 150, errors, plain_only=True)
    elif kind == "number_input":
        if not isinstance(element.get("is_decimal_allowed"), bool):
            errors.append(f"{where}.is_decimal_allowed: required boolean")
        for name in ("initial_value", "min_value", "max_value"):
            if name in element:
                try:
                    float(element[name])
                except (TypeError, ValueError):
                    errors.append(f"{where}.{name}: must be a number string")
    elif kind in ("image", "overflow", "datepicker", "checkboxes", "radio_buttons", "multi_static_select"):
        pass
    else:
        errors.append(f"{where}: unknown element type {kind!r}")


def validate_blocks(blocks: Any, surface: str = "message") -> list[str]:
    """Slack's checks on ``blocks``; an empty list means Slack would accept them."""
    errors: list[str] = []
    if blocks is None:
        return errors
    if not isinstance(blocks, list):
        return ["blocks: must be an array"]
    limit = MAX_MODAL_BLOCKS if surface == "modal" else MAX_MESSAGE_BLOCKS
    if len(blocks) > limit:
        errors.append(f"blocks: must be at most {limit} items (got {len(blocks)})")
    allowed = MODAL_BLOCKS if surface == "modal" else MESSAGE_BLOCKS
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        action_ids: set[str] = set()  # action_ids are unique within their block
        if not isinstance(block, dict) or block.get("type") not in allowed:
            errors.append(f"{where}: unknown or misplaced block type {block.get('type') if isinstance(block, dict) else block!r}")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or len(block_id) > BLOCK_ID:
                errors.append(f"{where}.block_id: must be at most {BLOCK_ID} characters")
            elif block_id in block_ids:
                errors.append(f"{where}.block_id: duplicate {block_id!r}")
            block_ids.add(block_id)
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"{where}: section needs text or fields")
            if "text" in block:
                _text_object(block["text"], f"{where}.text", SECTION_TEXT, errors)
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_FIELDS:
                    errors.append(f"{where}.fields: must hold 1 to {MAX_FIELDS} items")
                else:
                    for j, item in enumerate(fields):
                        _text_object(item, f"{where}.fields[{j}]", FIELD_TEXT, errors)
            if "accessory" in block:
                _element(block["accessory"], f"{where}.accessory", errors, action_ids)
        elif kind == "header":
            _text_object(block.get("text"), f"{where}.text", HEADER_TEXT, errors, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
                errors.append(f"{where}.elements: must hold 1 to {CONTEXT_ELEMENTS} items")
            else:
                for j, item in enumerate(elements):
                    if isinstance(item, dict) and item.get("type") == "image":
                        continue
                    _text_object(item, f"{where}.elements[{j}]", SECTION_TEXT, errors)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= ACTION_ELEMENTS:
                errors.append(f"{where}.elements: must hold 1 to {ACTION_ELEMENTS} items")
            else:
                for j, item in enumerate(elements):
                    _element(item, f"{where}.elements[{j}]", errors, action_ids)
        elif kind == "input":
            _text_object(block.get("label"), f"{where}.label", INPUT_LABEL, errors, plain_only=True)
            if "hint" in block:
                _text_object(block["hint"], f"{where}.hint", INPUT_LABEL, errors, plain_only=True)
            if "element" not in block:
                errors.append(f"{where}.element: required")
            else:
                _element(block["element"], f"{where}.element", errors, action_ids)
    return errors


def validate_view(view: Any) -> list[str]:
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["view: must be a modal"]
    errors: list[str] = []
    _text_object(view.get("title"), "view.title", MODAL_TITLE, errors, plain_only=True)
    for name in ("submit", "close"):
        if name in view:
            _text_object(view[name], f"view.{name}", MODAL_BUTTON, errors, plain_only=True)
    if len(view.get("private_metadata") or "") > PRIVATE_METADATA:
        errors.append(f"view.private_metadata: must be at most {PRIVATE_METADATA} characters")
    if len(view.get("callback_id") or "") > BLOCK_ID:
        errors.append(f"view.callback_id: must be at most {BLOCK_ID} characters")
    has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
    if has_input and "submit" not in view:
        errors.append("view.submit: required when the view has input blocks")
    return errors + validate_blocks(view.get("blocks"), surface="modal")


# -- the server -----------------------------------------------------------------------------


def _decode(value: Any) -> Any:
    """Form-encoded calls carry JSON in strings (blocks, metadata, view)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


class FakeSlack(FileUploads):
    """The fake Web API. Use as a context manager or call start()/stop()."""

    def __init__(self, token: str = "xoxb-fake-bot-token", team_id: str = "T0LAXAI", bot_user: str = "UBOTLAXAI",
                 app_token: str | None = None, post_rate: float = 1.0, post_burst: float = 2,
                 update_per_minute: float = 50, update_burst: float = 5):
        self.token, self.team_id, self.bot_user, self.app_token = token, team_id, bot_user, app_token
        self.post_rate, self.post_burst = post_rate, post_burst
        self.update_rate, self.update_burst = update_per_minute / 60.0, update_burst
        self.lock = threading.RLock()
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel -> every message, roots and replies
        self.ephemerals: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.unreachable_channels: set[str] = set()  # answer not_in_channel for these
        self._post_buckets: dict[str, Bucket] = {}
        self._update_bucket = Bucket(self.update_rate, self.update_burst)
        self._seq = itertools.count(1)
        self._view_seq = itertools.count(1)
        self._init_files()  # files.getUploadURLExternal / completeUploadExternal (fake_slack_files.py)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def start(self) -> FakeSlack:
        self._thread = threading.Thread(target=self.server.serve_forever, name="fake-slack", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- fault injection ---------------------------------------------------------------

    def fail(self, status: int = 500, methods: list[str] | tuple[str, ...] | str | None = None,
             times: int | None = None, seconds: float | None = None, retry_after: int = 1,
             delay: float = 0.0, error: str | None = None, after_work: bool = False) -> Fault:
        """Answer ``status`` (500 or 429) to the next ``times`` calls or for ``seconds``.

        ``status=200`` with ``error`` answers ``{"ok": false, "error": error}`` (e.g.
        ``not_in_channel``); with ``delay`` instead, it does the work and answers only
        after ``delay`` seconds (a client with a shorter timeout can't tell whether it happened).
        ``after_work=True``: the work is done (the message stored) and *then* the client gets
        ``status`` (a 500 that did post); with ``delay`` too, that answer also comes late.
        """
        if isinstance(methods, str):
            methods = (methods,)
        fault = Fault(status=status, methods=frozenset(methods) if methods else None, remaining=times,
                      until=time.monotonic() + seconds if seconds is not None else None,
                      retry_after=retry_after, delay=delay, after_work=after_work,
                      error=error or ("ratelimited" if status == 429 else "fatal_error" if status != 200 else ""))
        with self.lock:
            self.faults.append(fault)
        return fault

    def heal(self) -> None:
        with self.lock:
            self.faults.clear()

    def reset(self) -> None:
        """Forget calls and messages (between tests sharing one server)."""
        with self.lock:
            self.calls.clear()
            self.messages.clear()
            self.ephemerals.clear()
            self.views.clear()
            self.uploads.clear()
            self.faults.clear()
            self.unreachable_channels.clear()
            self._post_buckets.clear()
            self._update_bucket = Bucket(self.update_rate, self.update_burst)

    # -- queries ------------------------------------------------------------------------

    def call_log(self, since: float | None = None) -> list[Call]:
        """Every call so far (from ``since``, a time.monotonic()), oldest first: a snapshot."""
        with self.lock:
            return [c for c in self.calls if since is None or c.mono >= since]

    def calls_to(self, method: str, ok: bool | None = None) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def channel_messages(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m) for m in self.messages.get(channel, [])]

    def roots(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.channel_messages(channel) if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Root first, then its replies in order."""
        return [m for m in self.channel_messages(channel) if m["ts"] == ts or m.get("thread_ts") == ts]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.channel_messages(channel) if m["ts"] == ts), None)

    def by_metadata(self, task_id: str, key: str | None = None) -> list[dict[str, Any]]:
        """Messages posted for a job (by their metadata), optionally one key."""
        with self.lock:
            found = []
            for messages in self.messages.values():
                for m in messages:
                    payload = (m.get("metadata") or {}).get("event_payload") or {}
                    if payload.get("task_id") == task_id and (key is None or payload.get("key") == key):
                        found.append(dict(m))
            return found

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
                 what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"fake Slack: timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    # -- dispatch -----------------------------------------------------------------------

    def handle(self, method: str, args: dict[str, Any], token: str | None) -> tuple[int, dict[str, Any], dict[str, str], float]:
        """(HTTP status, body, headers, delay before answering)."""
        call = Call(method, args, token, time.time(), time.monotonic())
        with self.lock:
            self.calls.append(call)
            fault = next((f for f in self.faults if f.matches(method, call.mono)), None)
            if fault is not None and fault.remaining is not None:
                fault.remaining -= 1
            refuses = fault is not None and (fault.status != 200 or bool(fault.error))
            if refuses and not fault.after_work:
                return self._injected(call, fault)
            status, body, headers = self._perform(call)
            if refuses and call.performed:
                return self._injected(call, fault)  # done, but the client hears a failure
            if fault is None:
                return status, body, headers, 0.0
            call.injected = True  # a late answer
            return status, body, headers, fault.delay

    def _injected(self, call: Call, fault: Fault) -> tuple[int, dict[str, Any], dict[str, str], float]:
        headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
        call.status, call.response, call.injected = fault.status, {"ok": False, "error": fault.error}, True
        return fault.status, call.response, headers, fault.delay

    def _perform(self, call: Call) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Do the call's work as Slack would: (HTTP status, body, headers); notes it on ``call``."""
        try:
            handler = getattr(self, "_" + call.method.replace(".", "_"), None)
            if handler is None:
                raise SlackError("unknown_method")
            if call.method != "apps.connections.open" and call.token != self.token:
                raise SlackError("invalid_auth" if call.token else "not_authed")
            call.response, call.performed = {"ok": True, **handler(call.args)}, True
            return 200, call.response, {}
        except SlackError as exc:
            call.status = exc.status
            call.response = {"ok": False, "error": exc.error, **exc.extra}
            return exc.status, call.response, exc.headers

    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq) % 1_000_000:06d}"

    def _channel(self, args: dict[str, Any]) -> str:
        channel = args.get("channel")
        if not channel:
            raise SlackError("channel_not_found")
        if channel in self.unreachable_channels:
            raise SlackError("not_in_channel")
        return str(channel)

    def _check_blocks(self, args: dict[str, Any]) -> None:
        errors = validate_blocks(_decode(args.get("blocks")))
        if errors:
            raise SlackError("invalid_blocks", errors=errors)
        text = args.get("text")
        if text is not None and len(str(text)) > MESSAGE_TEXT:
            raise SlackError("msg_too_long")

    def _rate(self, bucket: Bucket) -> None:
        ok, retry_after = bucket.take()
        if not ok:
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})

    # -- methods -----------------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://laxai.slack.test/", "team": "LaxAI", "user": "laxai-train", "team_id": self.team_id,
                "user_id": self.bot_user, "bot_id": "BLAXAI", "is_enterprise_install": False}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        blocks = _decode(args.get("blocks"))
        if not args.get("text") and not blocks:
            raise SlackError("no_text")
        self._check_blocks(args)
        metadata = _decode(args.get("metadata"))
        if metadata is not None and (not isinstance(metadata, dict) or "event_type" not in metadata
                                     or not isinstance(metadata.get("event_payload"), dict)):
            raise SlackError("invalid_metadata_format")
        thread_ts = args.get("thread_ts") or None
        reply_to_reply = False
        if thread_ts:
            parent = next((m for m in self.messages.get(channel, []) if m["ts"] == thread_ts), None)
            if parent is None:
                raise SlackError("thread_not_found")
            if parent.get("thread_ts") and parent["thread_ts"] != parent["ts"]:
                # Slack files it under the real parent; we note that the caller got it wrong.
                thread_ts, reply_to_reply = parent["thread_ts"], True
        self._rate(self._post_buckets.setdefault(channel, Bucket(self.post_rate, self.post_burst)))
        message = {"ts": self._ts(), "channel": channel, "text": args.get("text"), "blocks": blocks,
                   "thread_ts": thread_ts, "metadata": metadata, "user": self.bot_user, "bot_id": "BLAXAI",
                   "reply_to_reply": reply_to_reply, "edits": 0, "posted_at": time.time()}
        self.messages.setdefault(channel, []).append(message)
        shown = {k: v for k, v in message.items() if k not in ("reply_to_reply", "edits", "posted_at")}
        return {"channel": channel, "ts": message["ts"], "message": shown}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        message = next((m for m in self.messages.get(channel, []) if m["ts"] == args.get("ts")), None)
        if message is None:
            raise SlackError("message_not_found")
        self._check_blocks(args)
        self._rate(self._update_bucket)
        if "text" in args:
            message["text"] = args["text"]
        if "blocks" in args:
            message["blocks"] = _decode(args["blocks"])
        message["edits"] += 1
        message["edited_at"] = time.time()
        return {"channel": channel, "ts": message["ts"], "text": message["text"]}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        if not args.get("user"):
            raise SlackError("user_not_found")
        if not args.get("text") and not args.get("blocks"):
            raise SlackError("no_text")
        self._check_blocks(args)
        ts = self._ts()
        self.ephemerals.append({"channel": channel, "user": args["user"], "text": args.get("text"),
                                "blocks": _decode(args.get("blocks")), "thread_ts": args.get("thread_ts"),
                                "message_ts": ts})
        return {"message_ts": ts}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            raise SlackError("invalid_trigger_id")
        view = _decode(args.get("view"))
        errors = validate_view(view)
        if errors:
            raise SlackError("invalid_arguments", response_metadata={"messages": errors})
        opened = {**view, "id": f"V{next(self._view_seq):08d}", "team_id": self.team_id,
                  "hash": f"{time.time():.6f}", "trigger_id": args["trigger_id"]}
        self.views.append(opened)
        return {"view": opened}

    def _page(self, items: list[dict[str, Any]], args: dict[str, Any], key: str) -> dict[str, Any]:
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        start = int(args.get("cursor") or 0)
        page = items[start:start + limit]
        if not _truthy(args.get("include_all_metadata")):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(items)
        return {key: page, "has_more": more, "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        ts = args.get("ts")
        items = [m for m in self.messages.get(channel, []) if m["ts"] == ts or m.get("thread_ts") == ts]
        if not items:
            raise SlackError("thread_not_found")
        return self._page(items, args, "messages")

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args)
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        items = [m for m in self.messages.get(channel, [])
                 if (not m.get("thread_ts") or m["thread_ts"] == m["ts"]) and oldest < float(m["ts"]) <= latest]
        return self._page(list(reversed(items)), args, "messages")

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        # Socket Mode needs a WebSocket server this fake doesn't have; it only checks the app token.
        raise SlackError("invalid_auth" if not self.app_token else "not_allowed_token_type")


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeSlack/1.0"

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def _serve(self, args: dict[str, Any]) -> None:
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        path = urllib.parse.urlparse(self.path).path
        if not path.startswith("/api/"):
            self.send_error(404)
            return
        method = path[len("/api/"):]
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else (args.pop("token", None) or None)
        status, body, headers, delay = fake.handle(method, args, token)
        if delay:
            time.sleep(delay)
        raw = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        self._serve({k: v[-1] for k, v in query.items()})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urllib.parse.urlparse(self.path).path
        if path.startswith("/upload/v1/"):  # an upload URL handed out by files.getUploadURLExternal
            status, text = self.server.fake.receive_upload(path.rsplit("/", 1)[-1], raw)  # type: ignore[attr-defined]
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        ctype = (self.headers.get("Content-Type") or "").lower()
        if "json" in ctype:
            try:
                args = json.loads(raw or b"{}")
            except ValueError:
                args = {}
        else:
            args = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8")).items()}
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        args.update({k: v[-1] for k, v in query.items()})
        self._serve({k: _decode(v) for k, v in args.items()})

"""The fake Slack's file uploads: the external upload flow, as Slack documents it.

1. ``files.getUploadURLExternal(filename, length[, alt_txt])`` answers ``upload_url`` and ``file_id``;
   ``filename`` and ``length`` are required (a missing or zero ``length`` is ``missing_argument``, a
   missing filename ``invalid_arguments``), ``alt_txt`` at most 1000 characters
   (``alt_txt_too_large``), a file over the workspace's limit (``max_file_bytes``, 1 GB as Slack's)
   is ``file_upload_size_restricted``.
2. POST to ``upload_url``: the bytes, exactly ``length`` of them (raw body; anything else is HTTP 400
   and nothing is kept); an unknown URL is 404. Slack answers 200 with ``OK - <length>``.
3. ``files.completeUploadExternal(files=[{id, title}], channel_id, thread_ts, initial_comment)``: every
   id must be one this fake handed out and whose bytes arrived (else ``file_not_found``); ``thread_ts``
   needs ``channel_id`` and must be a message of that channel (``invalid_arguments`` /
   ``thread_not_found``); a channel the bot can't reach is ``not_in_channel``. With a channel, the
   file is shared as a message (``files``: id, name, title, mimetype, size) in the channel or thread.

Both methods are Tier 4 (100+ a minute): each has its own bucket of ``FILES_PER_MINUTE`` with a burst.
Uploaded bytes are kept (``uploads``) so a test can look at the picture.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

FILES_PER_MINUTE = 100  # Tier 4
FILES_BURST = 20
MAX_FILE_BYTES = 1024 ** 3  # Slack's file size limit: 1 GB
ALT_TEXT = 1000


class FileUploads:
    """Mixed into FakeSlack: the two methods, the upload URL, and what was uploaded."""

    def _init_files(self) -> None:
        from tests.fakes.fake_slack import Bucket

        self.uploads: dict[str, dict[str, Any]] = {}  # file id -> filename, length, data, shared...
        self.max_file_bytes = MAX_FILE_BYTES
        self._file_seq = itertools.count(1)
        self._files_buckets = {m: Bucket(FILES_PER_MINUTE / 60.0, FILES_BURST)
                               for m in ("files.getUploadURLExternal", "files.completeUploadExternal")}

    # -- queries ---------------------------------------------------------------------

    def shared_files(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Uploads shared by files.completeUploadExternal (in ``channel``/``thread_ts`` when given), oldest first."""
        with self.lock:
            return [dict(u) for u in self.uploads.values() if u.get("shared_at") is not None
                    and (channel is None or u["channel"] == channel)
                    and (thread_ts is None or u["thread_ts"] == thread_ts)]

    # -- the upload URL ----------------------------------------------------------------

    def receive_upload(self, file_id: str, data: bytes) -> tuple[int, str]:
        """The POST to an upload URL: (HTTP status, body)."""
        with self.lock:
            from tests.fakes.fake_slack import Call

            call = Call("upload", {"file_id": file_id, "bytes": len(data)}, None, time.time(), time.monotonic())
            self.calls.append(call)
            upload = self.uploads.get(file_id)
            if upload is None:
                call.status, call.response = 404, {"ok": False, "error": "unknown upload URL"}
                return 404, "Not Found"
            if len(data) != upload["length"]:
                call.status, call.response = 400, {"ok": False, "error": "length mismatch"}
                return 400, f"length mismatch: announced {upload['length']} bytes, got {len(data)}"
            upload["data"], call.response, call.performed = bytes(data), {"ok": True}, True
            return 200, f"OK - {len(data)}"

    # -- methods -------------------------------------------------------------------------

    def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        from tests.fakes.fake_slack import SlackError

        try:
            length = int(args.get("length") or 0)
        except (TypeError, ValueError):
            raise SlackError("invalid_arguments") from None
        if length <= 0:
            raise SlackError("missing_argument")
        if not args.get("filename"):
            raise SlackError("invalid_arguments")
        if len(str(args.get("alt_txt") or "")) > ALT_TEXT:
            raise SlackError("alt_txt_too_large")
        if length > self.max_file_bytes:
            raise SlackError("file_upload_size_restricted")
        self._rate(self._files_buckets["files.getUploadURLExternal"])
        file_id = f"F{next(self._file_seq):09d}"
        self.uploads[file_id] = {"id": file_id, "filename": str(args["filename"]), "length": length,
                                 "alt_txt": args.get("alt_txt"), "data": None, "shared_at": None,
                                 "channel": None, "thread_ts": None, "title": None, "comment": None}
        base = self.url[: -len("api/")]
        return {"upload_url": f"{base}upload/v1/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        from tests.fakes.fake_slack import SlackError

        files = args.get("files")
        if isinstance(files, str):
            try:
                files = json.loads(files)
            except ValueError:
                raise SlackError("invalid_arguments") from None
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) and f.get("id") for f in files):
            raise SlackError("invalid_arguments")
        uploads = [self.uploads.get(str(f["id"])) for f in files]
        if any(u is None or u["data"] is None for u in uploads):
            raise SlackError("file_not_found")
        channel, thread_ts = args.get("channel_id") or None, args.get("thread_ts") or None
        if thread_ts and not channel:
            raise SlackError("invalid_arguments")
        if channel:
            channel = self._channel({"channel": channel})
            thread_ts = self._file_thread(channel, thread_ts)
        self._rate(self._files_buckets["files.completeUploadExternal"])
        for f, upload in zip(files, uploads):
            upload.update(title=f.get("title") or upload["filename"], channel=channel, thread_ts=thread_ts,
                          comment=args.get("initial_comment"), shared_at=time.time() if channel else None)
        if channel:
            self._share(channel, thread_ts, uploads, args.get("initial_comment"))
        return {"files": [{"id": u["id"], "title": u["title"]} for u in uploads]}

    def _file_thread(self, channel: str, thread_ts: str | None) -> str | None:
        from tests.fakes.fake_slack import SlackError

        if not thread_ts:
            return None
        parent = next((m for m in self.messages.get(channel, []) if m["ts"] == thread_ts), None)
        if parent is None:
            raise SlackError("thread_not_found")
        return parent.get("thread_ts") or parent["ts"]  # a reply's ts: Slack files it under the parent

    def _share(self, channel: str, thread_ts: str | None, uploads: list[dict[str, Any]], comment: Any) -> None:
        shown = [{"id": u["id"], "name": u["filename"], "title": u["title"], "mimetype": _mimetype(u["filename"]),
                  "size": u["length"]} for u in uploads]
        message = {"ts": self._ts(), "channel": channel, "text": str(comment or ""), "blocks": None,
                   "thread_ts": thread_ts, "metadata": None, "user": self.bot_user, "bot_id": "BLAXAI",
                   "files": shown, "upload": True, "reply_to_reply": False, "edits": 0, "posted_at": time.time()}
        self.messages.setdefault(channel, []).append(message)
        for upload in uploads:
            upload["message_ts"] = message["ts"]


def _mimetype(filename: str) -> str:
    return "image/png" if filename.lower().endswith(".png") else "application/octet-stream"

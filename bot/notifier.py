"""The notifier: keeps each Slack job's card and thread in step with the job record.

It follows the change feed (``runtime.on_change``: the store's watch or Eventarc's
pushes; ``reconcile(job)`` takes single jobs from any other trigger) and is
level-triggered: for the latest version of each job it asks ``plan.due`` what
the thread still lacks, then one sender thread posts it, paced by ``Pacer``
(final replies first, then lifecycle replies, then card edits; a card is edited
with its latest state only, so intermediate states are dropped).

Exactly once, as far as Slack allows:
- before a post, an intent (``notify.pending[key]``) is stored by compare-and-set;
  after it, the message's ts (``notify.posted[key]``). A restart or a duplicate
  event finds the key posted and skips it.
- a post that may or may not have gone out (timeout, 5xx, a crash between post
  and record) leaves its intent behind; before trying again the notifier looks
  for the message in Slack by its metadata (``laxai_notify`` with task and key).
Slack failures never touch the job: they are logged and retried with back-off;
a final reply is retried for ``SLACK_FINAL_GIVE_UP`` seconds, then given up with
an error log.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from orchestrator.domain.job import Job
from orchestrator.domain.status import TERMINAL_STATUSES
from orchestrator.runtime import Runtime
from orchestrator.stores.base import ChangeEvent, StoreError, Watch

from bot import blocks, plan
from bot.config import SlackSettings
from bot.ledger import Ledger
from bot.pacer import Pacer

log = logging.getLogger(__name__)

METADATA_TYPE = "laxai_notify"
# Slack refused the message itself: resend it as plain text rather than retry forever.
BLOCK_ERRORS = {"invalid_blocks", "invalid_blocks_format", "msg_too_long", "invalid_metadata_format",
                "invalid_metadata_schema", "metadata_too_large", "markdown_text_conflict"}
# The card can't be edited any more; stop trying until it changes again.
UPDATE_GONE = {"message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found",
               "is_archived", "not_in_channel"}
RESCAN_SECONDS = 300.0  # a safety net for missed change events
SCAN_TERMINAL = 200  # recently finished jobs looked at on start-up
SCAN_MAX_AGE = 24 * 3600.0  # finished longer ago than this: not worth a late reply


@dataclass
class Failure:
    first_at: float
    attempts: int = 0
    next_at: float = 0.0


@dataclass
class Track:
    """What the notifier knows about one job beyond its record (in memory only)."""

    job: Job
    pushed_hash: str | None = None  # the card as last sent to Slack
    hash_version: int = -1
    hash_value: str = ""
    dirty_since: float | None = None  # when the card first differed from what Slack shows
    last_update_at: float = float("-inf")
    ready_since: dict[str, float] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    local_posted: dict[str, str] = field(default_factory=dict)  # key -> ts; survives a failed record
    skipped: set[str] = field(default_factory=set)  # keys given up on
    clean_pending: set[str] = field(default_factory=set)  # our intents known not to have been posted
    plain: set[str] = field(default_factory=set)  # keys Slack refused as blocks: send text only
    best_map: float | None = None
    linked: bool = False  # a retry's original knows about it


@dataclass(frozen=True)
class Work:
    kind: str  # post | update | link
    key: str
    priority: int
    since: float


class Notifier:
    """Posts and edits Slack messages for jobs submitted from Slack."""

    def __init__(self, runtime: Runtime, settings: SlackSettings, client: WebClient,
                 clock: Callable[[], float] = time.monotonic, owner: str | None = None):
        self.runtime = runtime
        self.store = runtime.backend.store
        self.default_gpu = runtime.settings.GPU_TYPE
        self.settings = settings
        self.client = client
        self.clock = clock
        self.owner = owner or socket.gethostname()
        self.ledger = Ledger(self.store, self.owner)
        self.pacer = Pacer(settings.SLACK_POST_INTERVAL, settings.SLACK_UPDATES_PER_MINUTE, clock=clock)
        self._tracks: dict[str, Track] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Watch | None = None
        self._busy = False
        self._last_scan = 0.0
        self.sent = 0  # Web API calls made, for tests and logs

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        # Subscribe first, then scan: a change between the two is seen at least once.
        # runtime.on_change is the store's feed or Eventarc's pushes (LAXAI_CHANGE_FEED).
        self._watch = self.runtime.on_change(self._on_event)
        self.scan()
        self._thread = threading.Thread(target=self._run, name="slack-notifier", daemon=True)
        self._thread.start()
        log.info("Slack notifier started (owner %s)", self.owner)

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None

    def reconcile(self, job: Job | str) -> None:
        """Bring one job's thread up to date (for push triggers, e.g. Eventarc on Firestore).

        Returns at once; the notifier's own thread does the posting.
        """
        if isinstance(job, str):
            found = self.store.get(job)
            if found is None:
                return
            job = found
        self._observe(job)

    def scan(self) -> None:
        """Pick up every job that may still owe Slack something (start-up, and now and then)."""
        self._last_scan = self.clock()
        try:
            jobs = [*self.store.active(), *self.store.queued(limit=1000),
                    *self.store.list(statuses=TERMINAL_STATUSES, limit=SCAN_TERMINAL)]
        except StoreError:
            log.warning("Slack notifier: could not scan the store; relying on the change feed", exc_info=True)
            return
        cutoff = time.time() - SCAN_MAX_AGE
        for job in jobs:
            if job.finished_at is not None and job.finished_at.timestamp() < cutoff:
                continue
            self._observe(job)

    def idle(self) -> bool:
        """No message is owed and no card edit is pending (failures waiting count as owed)."""
        with self._cond:
            if self._busy:
                return False
            return all(self._finished(t) for t in self._tracks.values())

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.05)
        return self.idle()

    # -- input ------------------------------------------------------------------

    def _on_event(self, event: ChangeEvent) -> None:
        if event.kind == "notify" and self._holds(event.job):
            return  # our own bookkeeping: every ledger write handed that version back already
        # A "notify" event may still be news: feeds coalesce versions (Firestore snapshots do), so it
        # can carry a change made just before it by someone else (a worker's progress, a cancel),
        # and it may be another notifier's write, or ours that the store took but reported failed.
        self._observe(event.job)

    def _holds(self, job: Job) -> bool:
        """This version of ``job`` (or a newer one) is already known here."""
        with self._cond:
            track = self._tracks.get(job.task_id)
            return track is not None and track.job.version >= job.version

    def _observe(self, job: Job) -> None:
        if job.origin.source != "slack" or not job.origin.channel:
            return
        with self._cond:
            track = self._tracks.get(job.task_id)
            if track is None:
                if plan.finished_with(job, None, self.default_gpu) and not job.retry_of:
                    return
                track = Track(job=job)
                self._tracks[job.task_id] = track
            elif job.version < track.job.version:
                return  # an older event arriving late
            else:
                track.job = job
            for value in (blocks.metric(job.metrics, "map50_95"), blocks.best_map_of(job)):
                if value is not None and (track.best_map is None or value > track.best_map):
                    track.best_map = value
            self._cond.notify_all()

    # -- scheduling ---------------------------------------------------------------

    def _card_hash(self, track: Track) -> str:
        if track.hash_version != track.job.version:
            track.hash_value = plan.card_hash(track.job, self.default_gpu)
            track.hash_version = track.job.version
        return track.hash_value

    def _due(self, track: Track) -> list[plan.Step]:
        if "card" in track.skipped:
            return []
        return [s for s in plan.due(track.job) if s.key not in track.local_posted and s.key not in track.skipped]

    def _finished(self, track: Track) -> bool:
        """Nothing owed now; for a finished job that means nothing ever (the track may go)."""
        if self._due(track) or (track.job.retry_of and not track.linked):
            return False
        if not track.job.notify.get("card_ts") and "card" not in track.local_posted:
            return True  # card given up: nothing can be shown
        current = self._card_hash(track)
        return track.pushed_hash == current or (track.pushed_hash is None and track.job.notify.get("card_done") == current)

    def _candidates(self, track: Track, now: float) -> list[tuple[float, Work]]:
        """(ready time, work) for what this job could do next."""
        job = track.job
        found: list[tuple[float, Work]] = []
        if job.retry_of and not track.linked:
            found.append((now, Work("link", "link", plan.LIFECYCLE, now)))
        steps = self._due(track)
        if steps:
            step = steps[0]  # thread order: only the first owed message may go
            since = track.ready_since.setdefault(step.key, now)
            failure = track.failures.get(step.key)
            ready = max(self.pacer.post_ready_at(self._channel(job)), failure.next_at if failure else 0.0)
            found.append((ready, Work("post", step.key, step.priority, since)))
        card_ts = job.notify.get("card_ts") or track.local_posted.get("card")
        if card_ts and not self._finished_card(track):
            if track.dirty_since is None:
                track.dirty_since = now
            failure = track.failures.get("update")
            ready = max(track.last_update_at + self.settings.SLACK_CARD_MIN_INTERVAL, self.pacer.update_ready_at(),
                        failure.next_at if failure else 0.0)
            # A finished job's last card edit matters as much as lifecycle news.
            priority = plan.LIFECYCLE if job.status.is_terminal() else plan.UPDATE
            found.append((ready, Work("update", "card", priority, track.dirty_since)))
        return found

    def _finished_card(self, track: Track) -> bool:
        current = self._card_hash(track)
        if track.pushed_hash is None:
            return track.job.notify.get("card_done") == current
        return track.pushed_hash == current

    def _pick(self) -> tuple[Track | None, Work | None, float]:
        """The most urgent work that may run now, else how long to wait."""
        now = self.clock()
        best: tuple[tuple[int, float], Track, Work] | None = None
        wake = now + 5.0
        for task_id, track in list(self._tracks.items()):
            if self._finished(track):
                if track.job.status.is_terminal():
                    del self._tracks[task_id]  # a live job keeps its track: what Slack shows matters later
                continue
            for ready, work in self._candidates(track, now):
                if ready > now:
                    wake = min(wake, ready)
                    continue
                rank = (work.priority, work.since)
                if best is None or rank < best[0]:
                    best = (rank, track, work)
        if best is None:
            return None, None, max(0.01, wake - now)
        return best[1], best[2], 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.clock() - self._last_scan > RESCAN_SECONDS:
                self.scan()
            with self._cond:
                track, work, wait = self._pick()
                if work is None:
                    self._busy = False
                    self._cond.wait(timeout=min(wait, 5.0))
                    continue
                self._busy = True
            try:
                if work.kind == "post":
                    self._post(track, work.key)
                elif work.kind == "update":
                    self._update(track)
                else:
                    self._link(track)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the notifier
                log.exception("Slack notifier: %s %s for job %s failed", work.kind, work.key, track.job.task_id)
                self._failed(track, "update" if work.kind == "update" else work.key)
            finally:
                with self._cond:
                    self._busy = False

    # -- store bookkeeping (bot.ledger) -----------------------------------------------

    def _seen(self, job: Job | None) -> None:
        if job is not None:
            self._observe(job)

    def _claim(self, track: Track, key: str) -> str:
        """Store the intent to post ``key``: go | uncertain (look first) | done | busy."""
        state, job = self.ledger.claim(track.job.task_id, key, known_clean=key in track.clean_pending)
        self._seen(job)
        return state

    def _record(self, track: Track, key: str, ts: str, channel: str) -> None:
        track.local_posted[key] = ts  # even if the store write fails, this process won't post it again
        track.failures.pop(key, None)
        track.clean_pending.discard(key)
        track.ready_since.pop(key, None)
        job = self.ledger.record(track.job.task_id, key, ts, channel, track.job.origin.thread_ts or ts)
        if job is None and key not in plan.settled(track.job):
            log.error("Slack notifier: posted %s for %s (ts %s) but could not record it; a restart will find "
                      "it by its metadata", key, track.job.task_id, ts)
        self._seen(job)

    def _give_up(self, track: Track, key: str, why: str) -> None:
        log.error("Slack notifier: giving up on %s for job %s in %s: %s", key, track.job.task_id,
                  track.job.origin.channel, why)
        track.failures.pop(key, None)
        # Without a card there is no thread: everything owed goes with it.
        keys = [key] if key != "card" else [key, *[s.key for s in plan.due(track.job)]]
        track.skipped.update(keys)
        self._seen(self.ledger.give_up(track.job.task_id, keys, why))

    # -- Slack ------------------------------------------------------------------------

    @staticmethod
    def _channel(job: Job) -> str:
        return job.notify.get("card_channel") or job.origin.channel or ""

    def _thread_for(self, track: Track, key: str) -> str | None:
        job = track.job
        if key == "card":
            return job.origin.thread_ts  # a retry's card goes in the original's thread
        return (job.notify.get("thread_ts") or job.origin.thread_ts or job.notify.get("card_ts")
                or track.local_posted.get("card"))

    def _post(self, track: Track, key: str) -> None:
        job = track.job
        channel = self._channel(job)
        thread = self._thread_for(track, key)
        if key != "card" and not thread:
            self._failed(track, key, delay=1.0)  # the card comes first (plan.due orders it so); wait for it
            return
        state = self._claim(track, key)
        if state == "done":
            track.failures.pop(key, None)
            if key not in plan.settled(track.job):
                track.skipped.add(key)  # the record is gone: nothing to post for, and no spinning on it
            return
        if state == "busy":
            self._failed(track, key, delay=5.0)
            return
        if state == "uncertain":
            try:
                found = self._find_posted(track, key, channel, thread)
            except Exception as exc:  # noqa: BLE001 - lookups can fail like posts do
                if self._lookup_hopeless(exc):
                    found = None  # no way to know: post (a final) or skip (news), see below
                    if key not in ("final", "card"):
                        self._give_up(track, key, f"could not check Slack for an earlier post ({exc})")
                        return
                else:
                    log.warning("Slack notifier: looking for an earlier %s of %s failed: %s", key, job.task_id, exc)
                    self._failed(track, key)
                    return
            if found:
                log.info("Slack notifier: %s for %s was already posted (ts %s); recording it", key, job.task_id, found)
                self._record(track, key, found, channel)
                if key == "card":
                    track.pushed_hash = None  # unknown content: edit it to the current state
                return
        job = track.job  # the claim may have brought a newer version
        message = plan.render(job, key, track.best_map, self.default_gpu)
        kwargs: dict[str, Any] = {
            "channel": channel,
            "text": message.text,
            "metadata": {"event_type": METADATA_TYPE, "event_payload": {"task_id": job.task_id, "key": key}},
            "unfurl_links": False,
            "unfurl_media": False,
            **blocks.NO_PARSING,
        }
        if key not in track.plain:
            kwargs["blocks"] = message.blocks
        if thread:
            kwargs["thread_ts"] = thread
        try:
            self.sent += 1
            response = self.client.chat_postMessage(**kwargs)
        except SlackApiError as exc:
            self._api_error(track, key, exc, channel)
            return
        except Exception as exc:  # noqa: BLE001 - network trouble
            sure_not_sent = _refused(exc)
            if sure_not_sent:
                track.clean_pending.add(key)
            log.warning("Slack notifier: posting %s for %s failed (%s): %s", key, job.task_id,
                        "not sent" if sure_not_sent else "may have been sent", exc)
            self._failed(track, key)
            return
        self.pacer.posted(channel)
        ts = str(response.get("ts"))
        if key == "card":
            track.pushed_hash = plan.card_hash(job, self.default_gpu)
            track.last_update_at = self.clock()
            track.dirty_since = None
        self._record(track, key, ts, channel)
        if key == "card" and job.status.is_terminal():
            self._mark_card_done(track)
        log.info("Slack notifier: posted %s for job %s in %s", key, job.task_id, channel)

    def _update(self, track: Track) -> None:
        job = track.job
        card_ts = job.notify.get("card_ts") or track.local_posted.get("card")
        channel = self._channel(job)
        message = plan.render(job, "card", track.best_map, self.default_gpu)
        digest = self._card_hash(track)
        kwargs: dict[str, Any] = {"channel": channel, "ts": card_ts, "text": message.text, **blocks.NO_PARSING}
        kwargs["blocks"] = message.blocks if "card" not in track.plain else []
        try:
            self.sent += 1
            self.pacer.updated()
            self.client.chat_update(**kwargs)
        except SlackApiError as exc:
            error = _error_code(exc)
            if _status(exc) == 429 or error == "ratelimited":
                self.pacer.update_limited(_retry_after(exc))
                log.info("Slack notifier: chat.update rate limited; waiting %.0fs", _retry_after(exc))
                return
            if error in UPDATE_GONE:
                log.warning("Slack notifier: the card of %s can't be edited (%s); leaving it", job.task_id, error)
                track.pushed_hash = digest
                return
            if error in BLOCK_ERRORS and "card" not in track.plain:
                track.plain.add("card")
                log.error("Slack notifier: Slack refused the card of %s (%s); sending text only", job.task_id, error)
                return
            log.warning("Slack notifier: editing the card of %s failed: %s", job.task_id, error)
            self._failed(track, "update")
            return
        except Exception as exc:  # noqa: BLE001 - network trouble; an edit is safe to repeat
            log.warning("Slack notifier: editing the card of %s failed: %s", job.task_id, exc)
            self._failed(track, "update")
            return
        track.failures.pop("update", None)
        track.pushed_hash = digest
        track.last_update_at = self.clock()
        track.dirty_since = None
        if job.status.is_terminal():
            self._mark_card_done(track)

    def _mark_card_done(self, track: Track) -> None:
        if track.pushed_hash:
            self._seen(self.ledger.card_done(track.job.task_id, track.pushed_hash))

    def _link(self, track: Track) -> None:
        """Tell a retried job's record about its retry, so its card says so (and its Retry
        button's value changes: a later deliberate click makes another job)."""
        stored, original = self.ledger.link_retry(track.job.retry_of, track.job.task_id)
        track.linked = stored
        self._seen(original)

    def _find_posted(self, track: Track, key: str, channel: str, thread: str | None) -> str | None:
        """The ts of an earlier post of ``key`` for this job, found by its metadata."""
        job = track.job
        cursor = None
        for _ in range(10):  # pages
            if thread:
                response = self.client.conversations_replies(channel=channel, ts=thread, include_all_metadata=True,
                                                             limit=200, cursor=cursor)
            else:  # a top-level card: look at the channel around the time we meant to post it
                pending = (job.notify.get("pending") or {}).get(key) or {}
                oldest = max(0.0, float(pending.get("at", time.time())) - 120)
                response = self.client.conversations_history(channel=channel, oldest=f"{oldest:.6f}",
                                                             include_all_metadata=True, limit=200, cursor=cursor)
            self.sent += 1
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (metadata.get("event_type") == METADATA_TYPE and payload.get("task_id") == job.task_id
                        and payload.get("key") == key):
                    return str(message.get("ts"))
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    @staticmethod
    def _lookup_hopeless(exc: Exception) -> bool:
        """Looking can never work (the app lacks the history scopes)."""
        return isinstance(exc, SlackApiError) and _error_code(exc) in ("missing_scope", "not_allowed_token_type",
                                                                          "no_permission")

    # -- failures ---------------------------------------------------------------------

    def _api_error(self, track: Track, key: str, exc: SlackApiError, channel: str) -> None:
        error = _error_code(exc)
        status = _status(exc)
        if status == 429 or error == "ratelimited":
            wait = _retry_after(exc)
            self.pacer.post_limited(channel, wait)
            track.clean_pending.add(key)  # a 429 means it was not posted
            track.failures.setdefault(key, Failure(first_at=self.clock()))
            log.info("Slack notifier: rate limited in %s; waiting %.0fs", channel, wait)
            self._check_bound(track, key, f"rate limited ({error})")
            return
        if status and status >= 500:
            log.warning("Slack notifier: Slack answered %s to %s for %s (may have been posted)", status, key,
                        track.job.task_id)
            self._failed(track, key)
            return
        track.clean_pending.add(key)  # ok=false is a definite refusal
        if error in BLOCK_ERRORS and key not in track.plain:
            track.plain.add(key)
            log.error("Slack notifier: Slack refused the %s message for %s (%s: %s); sending text only", key,
                      track.job.task_id, error, exc.response.get("errors"))
            return
        log.warning("Slack notifier: posting %s for %s failed: %s", key, track.job.task_id, error)
        self._failed(track, key)

    def _failed(self, track: Track, key: str, delay: float | None = None) -> None:
        now = self.clock()
        failure = track.failures.setdefault(key, Failure(first_at=now))
        failure.attempts += 1
        if delay is None:
            delay = min(60.0, 2.0 ** min(failure.attempts, 6)) * random.uniform(0.8, 1.2)
        failure.next_at = now + delay
        if key != "update":
            self._check_bound(track, key, f"{failure.attempts} failed tries")

    def _check_bound(self, track: Track, key: str, why: str) -> None:
        failure = track.failures.get(key)
        if failure is None:
            return
        final = key in ("final", "card")
        bound = self.settings.SLACK_FINAL_GIVE_UP if final else self.settings.SLACK_REPLY_GIVE_UP
        if self.clock() - failure.first_at > bound:
            self._give_up(track, key, f"{why} over {bound:.0f}s")


def _status(exc: SlackApiError) -> int:
    return int(getattr(exc.response, "status_code", 0) or 0)


def _error_code(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "")
    except Exception:  # noqa: BLE001 - a body that is not JSON
        return ""


def _retry_after(exc: SlackApiError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    for name, value in dict(headers).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return max(1.0, float(value))
            except (TypeError, ValueError):
                break
    return 1.0


def _refused(exc: Exception) -> bool:
    """The connection was refused: the request never reached Slack."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    return isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, ConnectionRefusedError)

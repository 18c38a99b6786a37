"""The notifier's loop: follows the change feed, keeps one ``Track`` per Slack job, picks the next work.

It follows ``runtime.on_change`` (the store's watch or Eventarc's pushes;
``reconcile(job)`` takes single jobs from any other trigger) and is
level-triggered: for the latest version of each job the pure plan (bot/plan.py)
says what the thread still lacks, and one sender thread does the most urgent
thing that Slack's pace allows (bot/pacer.py): final replies first, then lifecycle
replies, then card edits; a card is edited with its latest state only, so
intermediate states are dropped. The work itself is in bot/notifier/steps.py.

What was posted is kept in the job's ``slack_threads`` record (bot/ledger.py,
bot/threads/), never in the job document: the notifier writes no job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from slack_sdk import WebClient

from orchestrator.domain.job import Job
from orchestrator.domain.status import TERMINAL_STATUSES, JobStatus
from orchestrator.runtime import Runtime
from orchestrator.stores.base import ChangeEvent, StoreError, Watch

from bot import plan
from bot.config import SlackSettings
from bot.ledger import Ledger
from bot.notifier.lease import NotifierLease
from bot.notifier.poster import SlackPoster
from bot.notifier.queue_cards import QueueCards
from bot.notifier.state import Track
from bot.notifier.steps import Steps
from bot.notifier.work import Work, pick
from bot.pacer import Pacer
from bot.threads.base import SlackThreads, open_threads

log = logging.getLogger("bot.notifier")

RESCAN_SECONDS = 300.0  # a safety net for missed change events
SCAN_TERMINAL = 200  # recently finished jobs looked at on start-up
SCAN_MAX_AGE = 24 * 3600.0  # finished longer ago than this: not worth a late reply
DONE_KEPT = 10_000  # finished jobs remembered as needing nothing
LOOK_AT_ALL_SECONDS = 10.0  # a pick looks at every track this often, not only those due (_due)
PICK_SETTLE_SECONDS = 0.05  # after a change wakes the idle loop, wait this long for others before picking,
SETTLE_ABOVE_TRACKS = 200  # when it follows more jobs than this


class Notifier:
    """Posts and edits Slack messages for jobs submitted from Slack."""

    def __init__(self, runtime: Runtime, settings: SlackSettings, client: WebClient,
                 clock: Callable[[], float] = time.monotonic, owner: str | None = None,
                 threads: SlackThreads | None = None):
        self.runtime = runtime
        self.store = runtime.backend.store
        self.default_gpu = runtime.settings.GPU_TYPE
        self.settings = settings
        self.clock = clock
        # Unique per process: two instances on one host must not read each other's claims as their own.
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.threads = threads or open_threads(runtime)
        self.ledger = Ledger(self.threads, self.owner)
        self.pacer = Pacer(settings.SLACK_POST_INTERVAL, settings.SLACK_UPDATES_PER_MINUTE, clock=clock)
        self.poster = SlackPoster(client, self.pacer)
        self.steps = Steps(self.ledger, self.poster, settings, self.default_gpu, clock, self._amend)
        self.lease = NotifierLease(self.store, self.owner, settings.SLACK_NOTIFIER_LEASE_SECONDS, clock)
        self._sending = False  # holds the lease (as last asked): only then are jobs followed and sent
        self._tracks: dict[str, Track] = {}
        # When each track may next have work to do: 0, look at it at the next pick (it changed, or
        # has work waiting); a time, the earliest its work may go (pace, back-off, card interval);
        # inf, nothing until it changes. A pick looks only at the tracks due, not at every track:
        # with a thousand queued jobs a pick per card would otherwise cost a thousand plans.
        self._due: dict[str, float] = {}
        self._looked_at_all = 0.0
        # Jobs found to need nothing, by the version seen: a rescan needn't read their records again.
        self._done: dict[str, int] = {}
        self._cond = threading.Condition()
        # Queued cards show their place in line, which moves when other jobs change (queue_cards.py).
        self.queue_cards = QueueCards(self.store, runtime.settings, settings.SLACK_CARD_MIN_INTERVAL, clock,
                                      self._cond)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Watch | None = None
        self._busy = False
        self._last_scan = 0.0

    @property
    def sent(self) -> int:
        """Web API calls made, for tests and logs."""
        return self.poster.sent

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        # Subscribe first, then scan (once the lease is held): a change between the two is seen at least once.
        self._watch = self.runtime.on_change(self._on_event)
        self._follow_lease()
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
        self.lease.release()
        self._sending = False

    def _follow_lease(self) -> bool:
        """Ask the lease (bot/notifier/lease.py); on taking it, scan; on losing it, drop the tracks."""
        held, taken = self.lease.held()
        if taken:
            self._sending = True
            self.scan()
        elif not held and self._sending:
            self._sending = False
            with self._cond:
                self._tracks.clear()  # the holder owns them now; on taking the lease back, a scan
                self._due.clear()
        return held

    def reconcile(self, job: Job | str) -> None:
        """Bring one job's thread up to date (for push triggers). Returns at once."""
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
                    *self.store.list(statuses={JobStatus.AWAITING_APPROVAL}, limit=1000),  # their requests
                    *self.store.list(statuses=TERMINAL_STATUSES, limit=SCAN_TERMINAL)]
        except StoreError:
            log.warning("Slack notifier: could not scan the store; relying on the change feed", exc_info=True)
            return
        cutoff = time.time() - SCAN_MAX_AGE
        for job in jobs:
            self.queue_cards.noticed(job)
            if job.finished_at is None or job.finished_at.timestamp() >= cutoff:
                self._observe(job)

    def idle(self) -> bool:
        """No message is owed and no card edit is pending (failures waiting count as owed)."""
        with self._cond:
            return (not self._busy and all(t.finished() for t in self._tracks.values())
                    and not self.queue_cards.pending(self._tracks.values()))

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.05)
        return self.idle()

    # -- input ------------------------------------------------------------------

    def _on_event(self, event: ChangeEvent) -> None:
        if self.queue_cards.noticed(event.job):  # any job, any channel: queued cards may move
            with self._cond:
                self._cond.notify_all()
        if event.kind == "notify" and self._holds(event.job):
            return  # an old notifier's bookkeeping on the job, of a version known here already
        self._observe(event.job)

    def _holds(self, job: Job) -> bool:
        with self._cond:
            track = self._tracks.get(job.task_id)
            return track is not None and track.job.version >= job.version

    def _observe(self, job: Job) -> None:
        if job.origin.source != "slack" or not job.origin.channel or not self._sending:
            return
        if self._amend(job.task_id, lambda t: t.seen(job, None, self.default_gpu)
                       if job.version >= t.job.version else t) is not None:
            return
        if self._done.get(job.task_id) == job.version:
            return
        fresh = Track.start(job, self.ledger.read(job), self.default_gpu)  # a store read: outside the lock
        if plan.finished_with(fresh.job, None, self.default_gpu) and not job.retry_of:
            self._finished_with(fresh)
            return
        with self._cond:
            track = self._tracks.get(job.task_id)
            if track is None:
                self._put(job.task_id, fresh)
                if job.status is JobStatus.QUEUED:
                    self.queue_cards.touch()  # its card needs its place in line
            elif job.version >= track.job.version:
                self._put(job.task_id, track.seen(job, None, self.default_gpu))
            self._cond.notify_all()

    def _finished_with(self, track: Track) -> None:
        if len(self._done) > DONE_KEPT:
            self._done.clear()  # only a saving: forgetting costs a read per job at the next scan
        self._done[track.job.task_id] = track.job.version

    def _amend(self, task_id: str, fn: Callable[[Track], Track]) -> Track | None:
        """Replace a live track by ``fn(track)``; None when there is no track (any more)."""
        with self._cond:
            track = self._tracks.get(task_id)
            if track is None:
                return None
            self._put(task_id, changed := fn(track))
            self._cond.notify_all()
            return changed

    def _put(self, task_id: str, track: Track) -> None:
        """A new or changed track (under the lock): the next pick looks at it."""
        self._tracks[task_id] = track
        self._due[task_id] = 0.0

    # -- work ---------------------------------------------------------------------

    def _pick(self) -> tuple[Track | None, Work | None, float]:
        """The most urgent work that may run now, else how long to wait (under the lock)."""
        now = self.clock()
        if now - self._looked_at_all >= LOOK_AT_ALL_SECONDS:  # a safety net: every track, now and then
            self._looked_at_all = now
            self._due.update(dict.fromkeys(self._tracks, 0.0))
        track, work, wait, ended = pick(self._tracks, self._due, now, self.pacer, self.settings.SLACK_CARD_MIN_INTERVAL)
        for done in ended:
            self._finished_with(done)
        return track, work, wait

    def _run(self) -> None:
        nudged = False
        while not self._stop.is_set():
            if nudged and len(self._tracks) > SETTLE_ABOVE_TRACKS:
                # A pick looks at every changed track: with many, let a burst of changes (fifty /train
                # at once) land first, so the loop picks a few times a burst, not once per change (the
                # acks share the GIL). With few, a pick is cheap and the first card goes at once.
                self._stop.wait(PICK_SETTLE_SECONDS)
            nudged = False
            if not self._follow_lease():
                self._stop.wait(min(5.0, self.lease.ttl / 4))
                continue
            if self.clock() - self._last_scan > RESCAN_SECONDS:
                self.scan()
            self.queue_cards.refresh(lambda: list(self._tracks.values()), self._amend, self.default_gpu)
            with self._cond:
                track, work, wait = self._pick()
                if work is None or track is None:
                    self._busy = False
                    nudged = self._cond.wait(timeout=min(wait, self.queue_cards.wait(), 5.0))
                    continue
                self._busy = True
            try:
                self._do(track, work)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the notifier
                log.exception("Slack notifier: %s %s for job %s failed", work.kind, work.key, track.job.task_id)
                self.steps.failed(track.job.task_id, "update" if work.kind == "update" else work.key)
            finally:
                with self._cond:
                    self._busy = False

    def _do(self, track: Track, work: Work) -> None:
        if work.kind == "post":
            self.steps.post(track, work.key)
        elif work.kind == "update":
            self.steps.update(track)
        else:
            self._link(track)

    def _link(self, track: Track) -> None:
        """Tell a retried job's original about its retry, so its card says so (and its Retry
        button's value changes: a later deliberate click makes another job)."""
        original = self.store.get(str(track.job.retry_of))
        stored, record = (True, None) if original is None else self.ledger.link_retry(original, track.job.task_id)
        self._amend(track.job.task_id, lambda t: replace(t, linked=stored))
        if record is not None and original is not None and self.steps.merge(original.task_id, record) is None:
            self._done.pop(original.task_id, None)  # its record changed: its card needs an edit
            self._observe(original)  # no live track: observing it reads the record

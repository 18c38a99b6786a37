"""Keeps the place in line on queued jobs' cards current, though it changes when OTHER jobs change.

A card is otherwise edited when its own job changes (bot/plan.py is level-triggered on the
job). A queued job's place moves when any job starts, ends, is queued or leaves the queue, in
any channel. So the notifier tells ``QueueCards`` about every job it sees (``noticed``): a job
whose status moves into, out of or between queued and holding a slot makes the line stale.
Paced and bounded:

- at most one look at the queue per ``gap`` seconds (SLACK_CARD_MIN_INTERVAL, at least
  ``MIN_GAP``), and none unless a queued card is live; a look is two bounded store reads
  (orchestrator/queue_view.py ``read_line``), whatever the number of cards;
- each queued card gets its place as one short line (``3rd in line · all 2 slots busy``, in
  the track, shown by bot/blocks.py ``card``); the track's card fingerprint changes only when
  that line changes, so only those cards are edited, through the usual card edits and their
  pacing (bot/pacer.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from orchestrator.config import Settings
from orchestrator.domain.job import Job
from orchestrator.domain.queue_position import Line
from orchestrator.domain.status import JobStatus
from orchestrator.queue_view import read_line
from orchestrator.stores.base import JobStore, StoreError

from bot.notifier.state import Track

log = logging.getLogger("bot.notifier")

MIN_GAP = 0.5
Amend = Callable[[str, Callable[[Track], Track]], "Track | None"]


def in_line(status: JobStatus) -> bool:
    """A status that takes part in the queue: waiting in it, or holding a slot."""
    return status is JobStatus.QUEUED or status.is_active()


def wants_place(track: Track) -> bool:
    """A card that shows a place in line, or should."""
    return track.queue is not None or track.job.status is JobStatus.QUEUED


class QueueCards:
    """When the queued cards need their places again, and what they are. ``lock``: the notifier's
    own, which guards its tracks (``touch`` is called under it)."""

    def __init__(self, store: JobStore, settings: Settings, gap: float, clock: Callable[[], float],
                 lock: threading.Condition):
        self.store, self.settings, self.lock = store, settings, lock
        self.gap = max(MIN_GAP, gap)
        self.clock = clock
        self._statuses: dict[str, JobStatus] = {}  # jobs queued or holding a slot, as last seen
        self.stale = True
        self._last = float("-inf")

    def noticed(self, job: Job) -> bool:
        """A job as the change feed (or a scan) shows it; True when that makes the line stale: its
        part in the line changed (queued, holding a slot, neither)."""
        before = self._statuses.get(job.task_id)
        if in_line(job.status):
            self._statuses[job.task_id] = job.status
        else:
            self._statuses.pop(job.task_id, None)
        if before != job.status and (before is not None or in_line(job.status)):
            self.stale = True
            return True
        return False

    def touch(self) -> None:
        """A queued card appeared (a new job, or a track made again): it needs its place."""
        self.stale = True

    def pending(self, tracks: Iterable[Track]) -> bool:
        """A card may show an old place (for ``Notifier.idle``)."""
        return self.stale and any(wants_place(t) for t in tracks)

    def wait(self) -> float:
        """Seconds until a stale line may be read again (an hour when it is current)."""
        return max(0.0, self._last + self.gap - self.clock()) if self.stale else 3600.0

    def refresh(self, tracks: Callable[[], list[Track]], amend: Amend, default_gpu: str) -> None:
        """When the line may have moved and the pace allows: one look at the queue, and each card
        whose place changed gets it (``amend``; its edit then goes as card edits do)."""
        with self.lock:
            queued = [t for t in tracks() if wants_place(t)] if self.stale else []
            if not queued:
                self.stale = False  # no card to place: a new queued card touches it again
                return
        if self.wait() > 0:
            return
        self._last = self.clock()
        self.stale = False  # before the read: a change during it makes the line stale again
        try:
            line = read_line(self.store, self.settings)
        except StoreError:
            self.stale = True
            log.warning("Slack notifier: could not read the queue; trying again", exc_info=True)
            return
        for task_id, text in changed_places(line, queued).items():
            amend(task_id, lambda t, text=text: t.placed(text, default_gpu))


def changed_places(line: Line, tracks: Iterable[Track]) -> dict[str, str | None]:
    """task id -> the new place line, for each track whose card should now show another one (None:
    none, once it is not queued). A queued job the line does not hold is left as it is: it just
    left the queue, and the change that moved it makes the line stale again."""
    changed: dict[str, str | None] = {}
    for track in tracks:
        job = track.job
        if job.status is JobStatus.QUEUED:
            if not line.knows(job):
                continue
            text: str | None = line.place(job).line()
        else:
            text = None
        if text != track.queue:
            changed[job.task_id] = text
    return changed

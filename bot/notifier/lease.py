"""One sending notifier per deployment: a lease in the job store.

Several service instances can share one store (Cloud Run scaling out, two `laxai
serve` on one LAXAI_HOME). Each has a notifier, but Slack's limits are per channel
and per workspace, not per process: two notifiers pacing themselves separately
send twice Slack's pace and get 429s. So only the holder of the ``slack-notifier``
lease (``JobStore.try_lock``, the same kind of lease the dispatcher holds) sends;
the others follow nothing and wait. A holder that stops releases the lease; one
that dies loses it after ``SLACK_NOTIFIER_LEASE_SECONDS``. The instance that takes
it over scans the store (as a restarted notifier does) and the ``slack_threads``
claims make sure nothing is posted twice across the hand-over.

The lease is asked at most every ``ttl / 4`` seconds (a read, and a write once half
of the lease is used): a store failure reads as "not held" and is retried then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from orchestrator.domain.job import utcnow
from orchestrator.stores.base import JobStore

log = logging.getLogger("bot.notifier")

LEASE_NAME = "slack-notifier"


class NotifierLease:
    """Whether this notifier may send now; see the module."""

    def __init__(self, store: JobStore, owner: str, ttl: float, clock: Callable[[], float],
                 wall: Callable[[], datetime] = utcnow):
        self.store, self.owner, self.ttl = store, owner, ttl
        self.clock, self.wall = clock, wall
        self._held = False
        self._checked: float | None = None

    def held(self) -> tuple[bool, bool]:
        """(held now, newly taken): asks the store when the last answer is older than ttl/4."""
        now = self.clock()
        if self._checked is not None and now - self._checked < self.ttl / 4:
            return self._held, False
        self._checked = now
        try:
            held = self.store.try_lock(LEASE_NAME, self.owner, self.ttl, self.wall())
        except Exception:  # noqa: BLE001 - an observer never fails: not held, asked again later
            log.warning("Slack notifier: could not check its lease; not sending until it can", exc_info=True)
            held = False
        taken = held and not self._held
        if held != self._held:
            log.info("Slack notifier %s %s the sending lease", self.owner, "took" if held else "lost")
        self._held = held
        return held, taken

    def release(self) -> None:
        if not self._held:
            return
        self._held, self._checked = False, None
        try:
            self.store.release_lock(LEASE_NAME, self.owner)
        except Exception:  # noqa: BLE001
            log.debug("release of the notifier lease failed; it expires on its own", exc_info=True)

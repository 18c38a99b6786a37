"""What the notifier posted: reads and writes the job's ``slack_threads`` record (bot/threads).

Every write is a compare-and-set (``SlackThreads.update``), so two notifiers, or
one restarted mid-post, agree on what was posted. The job document is never
written here: the ledger has its own record, so it does not compete with the
worker for the job document's write budget (Firestore's ~1 write/s). Jobs stored
before the ledger moved keep their ``job.notify`` map: it seeds their record.

A store failure is logged and returned as "nothing changed", never raised: the
notifier is an observer and must not fail anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

from orchestrator.domain.job import Job
from orchestrator.stores.base import StoreError

from bot.threads.base import SlackThread, SlackThreads, claim

log = logging.getLogger(__name__)


def seed_of(job: Job) -> SlackThread:
    """The record a job starts from: its old ``notify`` map, if it has one."""
    return SlackThread.from_notify(job.task_id, job.notify) if job.notify else SlackThread(job.task_id)


class Ledger:
    """The ``slack_threads`` records as one notifier (``owner``) uses them."""

    def __init__(self, threads: SlackThreads, owner: str):
        self.threads = threads
        self.owner = owner

    def read(self, job: Job) -> SlackThread:
        """The job's record (its seed when none is stored, or when the store can't be read)."""
        try:
            return self.threads.get(job.task_id) or seed_of(job)
        except StoreError:
            log.warning("reading the Slack thread of %s failed", job.task_id, exc_info=True)
            return seed_of(job)

    def view(self, job: Job) -> Job:
        """The job as the card shows it: with its Slack record (card ts, retries) in ``notify``."""
        return job.model_copy(update={"notify": self.read(job).as_notify()})

    def _write(self, job: Job, fn: Callable[[SlackThread], SlackThread | None],
               attempts: int = 3) -> SlackThread | None:
        for attempt in range(attempts):
            try:
                return self.threads.update(job.task_id, fn, seed_of(job))
            except StoreError:
                log.warning("storing Slack state for %s failed (try %d)", job.task_id, attempt + 1, exc_info=True)
                time.sleep(0.2 * (attempt + 1))
        return None

    def claim(self, job: Job, key: str, known_clean: bool) -> tuple[str, SlackThread | None]:
        """Store the intent to post ``key``: (go | uncertain | done | busy, the record now).

        See ``bot.threads.base.claim`` for the four states; a store failure reads as busy.
        """
        outcome = {"state": "done"}

        def fn(record: SlackThread) -> SlackThread | None:
            decided = claim(record, key, self.owner, known_clean)
            outcome["state"] = decided.state
            return decided.record

        try:
            stored = self.threads.update(job.task_id, fn, seed_of(job))
        except StoreError:
            log.warning("could not store the intent to post %s for %s", key, job.task_id, exc_info=True)
            return "busy", None
        return outcome["state"], stored if stored is not None else self.read(job)

    def record(self, job: Job, key: str, ts: str, channel: str, thread_root: str) -> SlackThread | None:
        """``key`` is in Slack as ``ts``; for the card also where its thread is."""

        def fn(record: SlackThread) -> SlackThread:
            pending = {k: v for k, v in record.pending.items() if k != key}
            new = replace(record, posted={**record.posted, key: ts}, pending=pending)
            if key == "card":
                new = replace(new, card_ts=ts, card_channel=channel, thread_ts=record.thread_ts or thread_root)
            return new

        return self._write(job, fn)

    def give_up(self, job: Job, keys: list[str], why: str) -> SlackThread | None:
        return self._write(job, lambda r: replace(r, gave_up={**r.gave_up, **{k: why[:200] for k in keys}}))

    def card_done(self, job: Job, digest: str) -> SlackThread | None:
        """A finished job's card is final: restarts needn't edit it again."""
        return self._write(job, lambda r: replace(r, card_done=digest))

    def link_retry(self, original: Job, retry_id: str) -> tuple[bool, SlackThread | None]:
        """Add ``retry_id`` to the original's retries; (stored fine, the original's record if changed)."""

        def fn(record: SlackThread) -> SlackThread | None:
            return None if retry_id in record.retries else replace(record, retries=(*record.retries, retry_id))

        try:
            return True, self.threads.update(original.task_id, fn, seed_of(original))
        except StoreError:
            log.warning("could not link retry %s to %s", retry_id, original.task_id, exc_info=True)
            return False, None

"""What the notifier posted, kept on the job record itself (``job.notify``).

Every write is a compare-and-set through ``JobStore.update(..., kind="notify")``
(``set_notify``), so two notifiers, or one restarted mid-post, agree on what was
posted. The shape of ``job.notify``:

    card_ts, card_channel   the card (chat.update target)
    thread_ts               where replies go (the card, or the original's thread for a retry)
    posted  {key: ts}       messages that are in Slack
    pending {key: {owner, at}}  intents: a post that was (maybe) under way
    gave_up {key: why}      messages abandoned after their retry bound
    card_done               fingerprint of a finished job's final card
    retries [task_id]       retries made of this job (changes its Retry button)

A store failure is logged and returned as "nothing changed", never raised: the
notifier is an observer and must not fail anything. With a store write gap (1 s
on the gcp backend) each of these writes waits until the job document's last
write is that old, so a message costs the sender about a second there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from orchestrator.domain.job import Job
from orchestrator.domain.transitions import set_notify
from orchestrator.stores.base import JobStore, StoreError

from bot import plan

log = logging.getLogger(__name__)

CLAIM_TTL = 90.0  # another live notifier's intent is respected this long


class Ledger:
    """Reads and writes ``job.notify`` for one notifier (``owner``)."""

    def __init__(self, store: JobStore, owner: str):
        self.store = store
        self.owner = owner

    def _write(self, task_id: str, fn: Callable[[Job], Job | None], attempts: int = 3) -> Job | None:
        for attempt in range(attempts):
            try:
                return self.store.update(task_id, fn, kind="notify")
            except StoreError:
                log.warning("storing Slack state for %s failed (try %d)", task_id, attempt + 1, exc_info=True)
                time.sleep(0.2 * (attempt + 1))
        return None

    def get(self, task_id: str) -> Job | None:
        try:
            return self.store.get(task_id)
        except StoreError:
            return None

    def claim(self, task_id: str, key: str, known_clean: bool) -> tuple[str, Job | None]:
        """Store the intent to post ``key``. Returns (state, job now) with state:

        go: post it; uncertain: an earlier try may have posted it, look first;
        done: already posted or given up; busy: another live notifier is on it.
        ``known_clean``: our own earlier intent is known not to have been posted.
        """
        outcome = {"state": "done"}
        now = time.time()

        def fn(job: Job) -> Job | None:
            if key in plan.settled(job):
                outcome["state"] = "done"
                return None
            pending = dict(job.notify.get("pending") or {})
            earlier = pending.get(key)
            if earlier:
                if earlier.get("owner") != self.owner and now - float(earlier.get("at", 0)) < CLAIM_TTL:
                    outcome["state"] = "busy"
                    return None
                if earlier.get("owner") == self.owner and known_clean:
                    outcome["state"] = "go"
                    return None
                outcome["state"] = "uncertain"
            else:
                outcome["state"] = "go"
            pending[key] = {"owner": self.owner, "at": now}
            return set_notify(job, {"pending": pending})

        try:
            changed = self.store.update(task_id, fn, kind="notify")
        except StoreError:
            log.warning("could not store the intent to post %s for %s", key, task_id, exc_info=True)
            return "busy", None
        return outcome["state"], changed if changed is not None else self.get(task_id)

    def record(self, task_id: str, key: str, ts: str, channel: str, thread_root: str) -> Job | None:
        """``key`` is in Slack as ``ts``; for the card also where its thread is."""

        def fn(job: Job) -> Job | None:
            patch: dict[str, Any] = {
                "posted": {**(job.notify.get("posted") or {}), key: ts},
                "pending": {k: v for k, v in (job.notify.get("pending") or {}).items() if k != key},
            }
            if key == "card":
                patch.update(card_ts=ts, card_channel=channel, thread_ts=job.notify.get("thread_ts") or thread_root)
            return set_notify(job, patch)

        return self._write(task_id, fn)

    def give_up(self, task_id: str, keys: list[str], why: str) -> Job | None:
        def fn(job: Job) -> Job | None:
            gave_up = {**(job.notify.get("gave_up") or {}), **{k: why[:200] for k in keys}}
            return set_notify(job, {"gave_up": gave_up})

        return self._write(task_id, fn)

    def card_done(self, task_id: str, digest: str) -> Job | None:
        """A finished job's card is final: restarts needn't edit it again."""
        return self._write(task_id, lambda job: set_notify(job, {"card_done": digest})
                           if job.status.is_terminal() else None)

    def link_retry(self, original_id: str, retry_id: str) -> tuple[bool, Job | None]:
        """Add ``retry_id`` to the original's retries; (stored fine, original if changed)."""

        def fn(original: Job) -> Job | None:
            retries = list(original.notify.get("retries") or [])
            if retry_id in retries:
                return None
            return set_notify(original, {"retries": [*retries, retry_id]})

        try:
            return True, self.store.update(original_id, fn, kind="notify")
        except StoreError:
            log.warning("could not link retry %s to %s", retry_id, original_id, exc_info=True)
            return False, None

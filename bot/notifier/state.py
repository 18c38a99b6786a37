"""What the notifier knows about one job beyond its records: small, immutable, replaced on change.

A ``Track`` holds the job as last seen (with its Slack record overlaid as ``job.notify``,
the shape the pure plan reads), the record itself, and this process's memory of
what it sent: the card's fingerprint as Slack shows it, failures and their back-off,
keys posted but not yet recorded, keys given up, keys Slack wants as plain text.
Every change makes a new ``Track`` (``dataclasses.replace``); the loop swaps it in
under its lock, so the observer and the sender never see half an update.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any

from orchestrator.domain.job import Job

from bot import blocks, plan
from bot.threads.base import SlackThread

NOTHING: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Failure:
    """Failed tries of one key: since when, how many, and when the next may go."""

    first_at: float
    attempts: int = 0
    next_at: float = 0.0

    def again(self, now: float, delay: float | None = None) -> Failure:
        attempts = self.attempts + 1
        if delay is None:
            delay = min(60.0, 2.0 ** min(attempts, 6)) * random.uniform(0.8, 1.2)
        return Failure(self.first_at, attempts, now + delay)


@dataclass(frozen=True)
class Card:
    """The card as Slack shows it: its fingerprint when we last sent it, and edit timing."""

    pushed: str | None = None  # None: unknown (a restart, or a card found rather than posted)
    dirty_since: float | None = None  # when it first differed from what Slack shows
    last_update_at: float = float("-inf")


def _frozen(mapping: dict[str, Any]) -> MappingProxyType:
    return MappingProxyType(mapping)


@dataclass(frozen=True)
class Track:
    job: Job  # the job with its Slack record as ``notify``
    thread: SlackThread
    default_gpu: str  # what the card says a job that names no GPU runs on
    card: Card = Card()
    failures: MappingProxyType = field(default_factory=lambda: _frozen({}))
    ready_since: MappingProxyType = field(default_factory=lambda: _frozen({}))
    local_posted: MappingProxyType = field(default_factory=lambda: _frozen({}))  # survives a failed record
    skipped: frozenset[str] = NOTHING  # keys given up on
    clean_pending: frozenset[str] = NOTHING  # our intents known not to have been posted
    plain: frozenset[str] = NOTHING  # keys Slack refused as blocks: send text only
    best_map: float | None = None
    linked: bool = False  # a retry's original knows about it
    queue: str | None = None  # its place in line while queued, for the card (bot/notifier/queue_cards.py)

    @classmethod
    def start(cls, job: Job, thread: SlackThread, default_gpu: str) -> Track:
        return cls(job=job, thread=thread, default_gpu=default_gpu).seen(job, thread, default_gpu)

    def seen(self, job: Job, thread: SlackThread | None, default_gpu: str) -> Track:
        """This track with a newer job and/or record; the best mAP so far is kept."""
        thread = thread if thread is not None and thread.version >= self.thread.version else self.thread
        notify = thread.as_notify() if self.queue is None else {**thread.as_notify(), "queue": self.queue}
        view = job.model_copy(update={"notify": notify})
        best = self.best_map
        for value in (blocks.metric(job.metrics, "map50_95"), blocks.best_map_of(job)):
            if value is not None and (best is None or value > best):
                best = value
        return replace(self, job=view, thread=thread, default_gpu=default_gpu, best_map=best)

    # -- questions -------------------------------------------------------------

    # The card as it would render now (plan.card_hash), worked out when first asked: rendering is
    # the dearest thing a track does, and a queued job's track is remade several times (seen, then
    # placed in line) before its card is posted and a fingerprint is needed at all.
    @cached_property
    def digest(self) -> str:
        return plan.card_hash(self.job, self.default_gpu)

    def card_ts(self) -> str | None:
        return self.thread.card_ts or self.local_posted.get("card")

    def channel(self) -> str:
        return self.thread.card_channel or self.job.origin.channel or ""

    def thread_for(self, key: str) -> str | None:
        if key == "card":
            return self.job.origin.thread_ts  # a retry's card goes in the original's thread
        return self.thread.thread_ts or self.job.origin.thread_ts or self.card_ts()

    def due(self) -> list[plan.Step]:
        return list(self._owed)

    # A track never changes, so what it owes is worked out once: the loop asks every track on
    # every pick, and a thousand queued jobs would otherwise cost a plan each time.
    @cached_property
    def _owed(self) -> tuple[plan.Step, ...]:
        if "card" in self.skipped:
            return ()
        return tuple(s for s in plan.due(self.job) if s.key not in self.local_posted and s.key not in self.skipped)

    def card_current(self) -> bool:
        """Slack shows the card as it would render now (or it's final and stored as such)."""
        if self.card.pushed is None:
            return self.thread.card_done == self.digest
        return self.card.pushed == self.digest

    def finished(self) -> bool:
        """Nothing owed now; for a finished job that means nothing ever (the track may go)."""
        return self._finished

    @cached_property
    def _finished(self) -> bool:
        if self._owed or (self.job.retry_of and not self.linked):
            return False
        if not self.card_ts():
            return True  # card given up: nothing can be shown
        return self.card_current()

    # -- changes ---------------------------------------------------------------

    def failed(self, key: str, now: float, delay: float | None = None) -> Track:
        failure = self.failures.get(key) or Failure(first_at=now)
        return replace(self, failures=_frozen({**self.failures, key: failure.again(now, delay)}))

    def limited(self, key: str, now: float) -> Track:
        """A 429: not posted (clean), and the retry bound starts counting."""
        failures = {**self.failures, key: self.failures.get(key) or Failure(first_at=now)}
        return replace(self, failures=_frozen(failures), clean_pending=self.clean_pending | {key})

    def cleared(self, key: str) -> Track:
        return replace(self, failures=_frozen({k: v for k, v in self.failures.items() if k != key}))

    def posted(self, key: str, ts: str) -> Track:
        return replace(self.cleared(key), local_posted=_frozen({**self.local_posted, key: ts}),
                       clean_pending=self.clean_pending - {key},
                       ready_since=_frozen({k: v for k, v in self.ready_since.items() if k != key}))

    def ready(self, key: str, now: float) -> Track:
        if key in self.ready_since:
            return self
        return replace(self, ready_since=_frozen({**self.ready_since, key: now}))

    def dirty(self, now: float) -> Track:
        return self if self.card.dirty_since is not None else replace(self, card=replace(self.card, dirty_since=now))

    def pushed(self, digest: str | None, now: float | None = None) -> Track:
        """Slack shows ``digest`` (None: unknown); ``now``: it was just sent."""
        card = Card(digest, None, now) if now is not None else replace(self.card, pushed=digest)
        return replace(self, card=card)

    def placed(self, queue: str | None, default_gpu: str) -> Track:
        """This track with its place in line (None: none to show); the card renders it while queued."""
        return replace(self, queue=queue).seen(self.job, None, default_gpu)

    def given_up(self, keys: list[str]) -> Track:
        return replace(self.cleared(keys[0]), skipped=self.skipped | set(keys))

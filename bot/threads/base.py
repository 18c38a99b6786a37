"""The Slack ledger's record and its store contract (``slack_threads``, keyed by job id).

One record per Slack job says what its thread holds (``SlackThread``):

    card_ts, card_channel   the card (chat.update target)
    thread_ts               where replies go (the card, or the original's thread for a retry)
    posted  {key: ts}       messages that are in Slack
    pending {key: {owner, at}}  intents: a post that was (maybe) under way
    gave_up {key: why}      messages abandoned after their retry bound
    card_done               fingerprint of a finished job's final card
    retries (task ids)      retries made of this job (changes its Retry button)

It lives beside the job record, not in it, so the notifier's bookkeeping never
competes with the worker for the job document's write budget, and only the
notifier writes it. The core (orchestrator/) never reads it.

Semantics every ``SlackThreads`` implementation keeps (tests/contract/test_slack_threads_contract.py):

- ``get(task_id)``: the stored record, or None when there is none.
- ``update(task_id, fn, seed)``: compare-and-set. ``fn`` gets the current record (``seed``,
  else an empty one, when none is stored yet) and returns the new one, or None for "no
  change"; a result equal to the current record is no change as well. The result is stored
  with ``version`` one higher, only if nobody stored another version meanwhile; otherwise
  ``fn`` runs again on the newer record. Returns the stored record, or None when nothing
  changed. So two notifiers claiming one message never both win (``claim``).
- Storage failures raise ``StoreError`` (the ledger logs them; the notifier never fails a job).
- ``close()`` releases connections.

``claim`` is the pure compare-and-set body for an intent to post, with its four outcomes.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.runtime import Runtime

CLAIM_TTL = 90.0  # another live notifier's intent is respected this long


def _frozen(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class SlackThread:
    """What one job's Slack thread holds; replaced, never changed in place."""

    task_id: str
    card_ts: str | None = None
    card_channel: str | None = None
    thread_ts: str | None = None
    posted: Mapping[str, str] = field(default_factory=dict)
    pending: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    gave_up: Mapping[str, str] = field(default_factory=dict)
    card_done: str | None = None
    retries: tuple[str, ...] = ()
    version: int = 0

    def __post_init__(self) -> None:
        for name in ("posted", "pending", "gave_up"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "retries", tuple(self.retries))

    __hash__ = None  # type: ignore[assignment]  # compared by value; holds mappings

    def settled(self) -> set[str]:
        """Keys that need nothing more: posted, or given up on."""
        return set(self.posted) | set(self.gave_up)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (``version`` included)."""
        return {"task_id": self.task_id, "card_ts": self.card_ts, "card_channel": self.card_channel,
                "thread_ts": self.thread_ts, "posted": dict(self.posted),
                "pending": {k: dict(v) for k, v in self.pending.items()}, "gave_up": dict(self.gave_up),
                "card_done": self.card_done, "retries": list(self.retries), "version": self.version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlackThread:
        return cls(task_id=str(data["task_id"]), card_ts=data.get("card_ts"), card_channel=data.get("card_channel"),
                   thread_ts=data.get("thread_ts"), posted=data.get("posted") or {},
                   pending=data.get("pending") or {}, gave_up=data.get("gave_up") or {},
                   card_done=data.get("card_done"), retries=tuple(data.get("retries") or ()),
                   version=int(data.get("version") or 0))

    def as_notify(self) -> dict[str, Any]:
        """The shape ``Job.notify`` had, for the pure plan and the blocks (in memory only)."""
        data = {k: v for k, v in self.to_dict().items() if k not in ("task_id", "version")}
        return {k: v for k, v in data.items() if v not in (None, {}, [])}

    @classmethod
    def from_notify(cls, task_id: str, notify: Mapping[str, Any]) -> SlackThread:
        """A record from an old job's ``notify`` map (jobs stored before the ledger moved)."""
        return cls.from_dict({**notify, "task_id": task_id, "version": 0})


class SlackThreads(abc.ABC):
    """The ``slack_threads`` records of one deployment (semantics in the module docstring)."""

    @abc.abstractmethod
    def get(self, task_id: str) -> SlackThread | None: ...

    @abc.abstractmethod
    def update(self, task_id: str, fn: Callable[[SlackThread], SlackThread | None],
               seed: SlackThread | None = None) -> SlackThread | None: ...

    def close(self) -> None:  # noqa: B027 - optional
        pass


def changed(current: SlackThread, new: SlackThread | None) -> SlackThread | None:
    """``new`` with the next version, or None when it changes nothing."""
    if new is None or new == current:
        return None
    return replace(new, version=current.version + 1)


@dataclass(frozen=True)
class Claim:
    """What ``claim`` decided: go (post), uncertain (look in Slack first), done, busy."""

    state: str
    record: SlackThread | None  # the record to store, None when nothing changes


def claim(record: SlackThread, key: str, owner: str, known_clean: bool, now: float | None = None) -> Claim:
    """The intent to post ``key`` by ``owner``, as a compare-and-set body.

    done: posted or given up already; busy: another owner's fresh intent (under ``CLAIM_TTL``);
    go: no earlier intent, or our own known not to have been posted (``known_clean``);
    uncertain: an earlier intent (ours, or a stale one) may have posted: look before posting.
    """
    now = time.time() if now is None else now
    if key in record.settled():
        return Claim("done", None)
    earlier = record.pending.get(key)
    if earlier:
        if earlier.get("owner") != owner and now - float(earlier.get("at", 0)) < CLAIM_TTL:
            return Claim("busy", None)
        if earlier.get("owner") == owner and known_clean:
            return Claim("go", None)
    state = "uncertain" if earlier else "go"
    return Claim(state, replace(record, pending={**record.pending, key: {"owner": owner, "at": now}}))


def open_threads(runtime: Runtime) -> SlackThreads:
    """The ledger store beside the runtime's job store: the SQLite file, or Firestore's client."""
    store = runtime.backend.store
    client = getattr(store, "client", None)
    if client is not None and runtime.settings.LAXAI_BACKEND == "gcp":
        from bot.threads.firestore import FirestoreSlackThreads

        return FirestoreSlackThreads(client)
    from bot.threads.sqlite import SqliteSlackThreads

    return SqliteSlackThreads(runtime.settings.db_path, timeout=runtime.settings.STORE_TIMEOUT)

"""The JobQueue contract: at-least-once delivery of "look at this job" messages.

Implementations: ``queues.local`` (a table in the local SQLite file) and
``queues.pubsub`` (Google Pub/Sub). Semantics follow Pub/Sub's: a pulled message
is invisible until acked or its ack deadline passes, then it is delivered again.
The store, not the queue, is the source of truth: a message only wakes the
dispatcher, which claims jobs by compare-and-set, so a duplicate delivery can
never start a job twice and a lost message never loses a job.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass(frozen=True)
class QueueMessage:
    """One delivery of a published message."""

    ack_id: str
    task_id: str
    delivery_attempt: int = 1
    attributes: dict[str, str] = field(default_factory=dict)


class JobQueue(abc.ABC):
    """Where submissions and wake-ups travel to the dispatcher."""

    @abc.abstractmethod
    def publish(self, task_id: str, **attributes: str) -> str:
        """Send a message about ``task_id``; returns its message id."""

    @abc.abstractmethod
    def pull(self, max_messages: int = 10, timeout: float = 1.0) -> list[QueueMessage]:
        """Up to ``max_messages`` deliveries, waiting at most ``timeout`` seconds for the first."""

    @abc.abstractmethod
    def ack(self, ack_id: str) -> None:
        """Done with this delivery; it will not come again."""

    @abc.abstractmethod
    def nack(self, ack_id: str) -> None:
        """Give the message back for redelivery now."""

    def close(self) -> None:
        """Release connections."""

"""Pub/Sub JobQueue: wake-up messages on ``TRAINING_TOPIC``, pulled from ``TRAINING_SUBSCRIPTION``.

A message's data is ``{"task_id": "..."}`` (JSON); keyword attributes travel as
Pub/Sub attributes. ``pull`` uses the synchronous unary Pull, so the dispatcher
decides when to take work; ``nack`` sets the ack deadline to 0 (redeliver now).
Delivery counts come from ``ReceivedMessage.delivery_attempt``, which Pub/Sub
fills in only on subscriptions with a dead-letter policy; without one every
delivery reads as 1.

``ensure_topology`` creates the topic, the subscription (ack deadline, and a
dead-letter policy to ``DEAD_LETTER_TOPIC`` after ``max_delivery_attempts``)
and a subscription on the dead-letter topic so dead letters are kept. It is meant
for the emulator (tests, one-laptop mode); in a real project Terraform/gcloud
owns these, and dead-lettering also needs the Pub/Sub service agent to hold
publisher on the dead-letter topic and subscriber on the subscription.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from orchestrator.queues.base import JobQueue, QueueMessage

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 30.0
# Pub/Sub's limits on a subscription's ack deadline and on max delivery attempts.
ACK_DEADLINE_RANGE = (10, 600)
DELIVERY_ATTEMPTS_RANGE = (5, 100)


def _clamp(value: float, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], int(value)))


class PubSubJobQueue(JobQueue):
    """A Pub/Sub topic and pull subscription."""

    def __init__(self, project: str, topic: str, subscription: str, *, dead_letter_topic: str | None = None,
                 max_delivery_attempts: int = 10, ack_deadline: float = 60,
                 publisher: Any = None, subscriber: Any = None):
        self.project = project
        self.publisher = publisher or pubsub_v1.PublisherClient()
        self.subscriber = subscriber or pubsub_v1.SubscriberClient()
        self.topic = self.publisher.topic_path(project, topic)
        self.subscription = self.subscriber.subscription_path(project, subscription)
        self.dead_letter_topic = self.publisher.topic_path(project, dead_letter_topic) if dead_letter_topic else None
        self.max_delivery_attempts = _clamp(max_delivery_attempts, DELIVERY_ATTEMPTS_RANGE)
        self.ack_deadline = _clamp(ack_deadline, ACK_DEADLINE_RANGE)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> PubSubJobQueue:
        return cls(settings.GOOGLE_CLOUD_PROJECT, settings.TRAINING_TOPIC, settings.TRAINING_SUBSCRIPTION,
                   dead_letter_topic=settings.DEAD_LETTER_TOPIC or None, **kwargs)

    # -- topology -------------------------------------------------------------

    def _create_topic(self, path: str) -> None:
        try:
            self.publisher.create_topic(request={"name": path})
        except gexc.AlreadyExists:
            pass

    def _create_subscription(self, path: str, topic: str, **extra: Any) -> None:
        try:
            self.subscriber.create_subscription(
                request={"name": path, "topic": topic, "ack_deadline_seconds": self.ack_deadline, **extra}
            )
        except gexc.AlreadyExists:
            pass

    def ensure_topology(self) -> None:
        """Create what is missing: topic, subscription, dead-letter topic and its subscription."""
        self._create_topic(self.topic)
        extra: dict[str, Any] = {}
        if self.dead_letter_topic:
            self._create_topic(self.dead_letter_topic)
            self._create_subscription(f"{self.dead_letter_topic.replace('/topics/', '/subscriptions/')}-sub",
                                      self.dead_letter_topic)
            extra["dead_letter_policy"] = {
                "dead_letter_topic": self.dead_letter_topic,
                "max_delivery_attempts": self.max_delivery_attempts,
            }
        self._create_subscription(self.subscription, self.topic, **extra)

    # -- messages -------------------------------------------------------------

    def publish(self, task_id: str, **attributes: str) -> str:
        data = json.dumps({"task_id": task_id}).encode()
        future = self.publisher.publish(self.topic, data, **{k: str(v) for k, v in attributes.items()})
        return str(future.result(timeout=PUBLISH_TIMEOUT))

    @staticmethod
    def _message(received: Any) -> QueueMessage:
        message = received.message
        attributes = dict(message.attributes)
        try:
            task_id = str(json.loads(message.data.decode())["task_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("pubsub message %s has no task_id in its data", message.message_id)
            task_id = attributes.get("task_id", "")
        return QueueMessage(received.ack_id, task_id, received.delivery_attempt or 1, attributes)

    def pull(self, max_messages: int = 10, timeout: float = 1.0) -> list[QueueMessage]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            request = {"subscription": self.subscription, "max_messages": int(max_messages),
                       "return_immediately": remaining <= 0}
            try:
                # A server-side wait ends at our deadline (DeadlineExceeded) or when it gives up empty.
                response = self.subscriber.pull(request=request, timeout=max(remaining, 0) or 10.0, retry=None)
                received = list(response.received_messages)
            except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
                received = []
            if received:
                return [self._message(r) for r in received]
            if deadline - time.monotonic() <= 0:
                return []
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def ack(self, ack_id: str) -> None:
        try:
            self.subscriber.acknowledge(request={"subscription": self.subscription, "ack_ids": [ack_id]})
        except gexc.InvalidArgument:  # an expired ack id: the message was (or will be) redelivered
            log.info("pubsub ack of an expired delivery ignored")

    def nack(self, ack_id: str) -> None:
        try:
            self.subscriber.modify_ack_deadline(
                request={"subscription": self.subscription, "ack_ids": [ack_id], "ack_deadline_seconds": 0}
            )
        except gexc.InvalidArgument:
            log.info("pubsub nack of an expired delivery ignored")

    def close(self) -> None:
        try:
            self.publisher.stop()
        except RuntimeError:  # already stopped
            pass
        transport = getattr(self.publisher, "transport", None)
        if transport is not None:  # every publish waited for its result, so nothing is pending
            transport.close()
        self.subscriber.close()

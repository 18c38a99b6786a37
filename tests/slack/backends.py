"""The backends the Slack tests run on: ``local`` (SQLite) and ``gcp`` (Firestore + Pub/Sub emulators).

``gcp_env`` is the environment that points a service (in this process or a
``laxai serve`` subprocess) at the emulators: the one-laptop gcp mode, with
workers as local subprocesses and the Firestore on_snapshot change feed.
"""

from __future__ import annotations

import os
import uuid

import pytest

BACKENDS = [pytest.param("local", id="local"), pytest.param("gcp", id="gcp", marks=pytest.mark.gcp)]


def gcp_env(project: str, topic: str, subscription: str, dead_letter_topic: str) -> dict[str, str]:
    """LAXAI_BACKEND=gcp on the running emulators (their *_EMULATOR_HOST must be set)."""
    return {
        "LAXAI_BACKEND": "gcp",
        "GOOGLE_CLOUD_PROJECT": project,
        "TRAINING_TOPIC": topic,
        "TRAINING_SUBSCRIPTION": subscription,
        "DEAD_LETTER_TOPIC": dead_letter_topic,
        "FIRESTORE_EMULATOR_HOST": os.environ["FIRESTORE_EMULATOR_HOST"],
        "PUBSUB_EMULATOR_HOST": os.environ["PUBSUB_EMULATOR_HOST"],
        "LAXAI_LAUNCHER": "local",
        "LAXAI_CHANGE_FEED": "watch",
    }


def fresh_gcp_env(prefix: str = "laxai-slack") -> dict[str, str]:
    """``gcp_env`` in a project of its own: its Firestore database and Pub/Sub names are
    shared with nothing else (for services that outlive one test, e.g. a module's)."""
    suffix = uuid.uuid4().hex[:10]
    return gcp_env(f"{prefix}-{suffix}", f"jobs-{suffix}", f"jobs-sub-{suffix}", f"jobs-dead-{suffix}")

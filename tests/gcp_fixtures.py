"""Pytest fixtures for tests that need the Firestore and Pub/Sub emulators.

A conftest uses them by importing the names it needs, e.g.::

    from tests.gcp_fixtures import firestore_client, clean_firestore, pubsub_names  # noqa: F401

The emulators start once per session, on first use. When ``FIRESTORE_EMULATOR_HOST``
or ``PUBSUB_EMULATOR_HOST`` is already set (CI may start them), that emulator is
used instead. While a session runs, the variables point at the emulators (the
client libraries read them when a client is made) and are restored afterwards.
Firestore is cleared before each test that asks for ``clean_firestore``; the
Pub/Sub emulator cannot be cleared, so ``pubsub_names`` gives fresh names.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests import emulators

GCP_PROJECT = "laxai-test"


def _emulator_host(kind: emulators.EmulatorKind) -> Iterator[str]:
    existing = os.environ.get(kind.env_var)
    if existing:
        yield existing
        return
    emulator = emulators.start(kind, project=GCP_PROJECT)
    os.environ[kind.env_var] = emulator.host
    try:
        yield emulator.host
    finally:
        os.environ.pop(kind.env_var, None)
        emulator.stop()


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[str]:
    """host:port of a running Firestore emulator; FIRESTORE_EMULATOR_HOST points at it."""
    yield from _emulator_host(emulators.FIRESTORE)


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[str]:
    """host:port of a running Pub/Sub emulator; PUBSUB_EMULATOR_HOST points at it."""
    yield from _emulator_host(emulators.PUBSUB)


@pytest.fixture(scope="session")
def firestore_client(firestore_emulator: str):
    """One Firestore client on the emulator for the session (project GCP_PROJECT)."""
    from google.cloud import firestore

    from orchestrator.stores.firestore import close_client

    client = firestore.Client(project=GCP_PROJECT)
    yield client
    close_client(client)


@pytest.fixture
def clean_firestore(firestore_emulator: str) -> str:
    """An empty Firestore database for this test."""
    emulators.clear_firestore(firestore_emulator, GCP_PROJECT)
    return firestore_emulator


@dataclass(frozen=True)
class PubSubNames:
    project: str
    topic: str
    subscription: str
    dead_letter_topic: str


@pytest.fixture
def pubsub_names(pubsub_emulator: str) -> PubSubNames:
    """Topic and subscription names no other test uses."""
    suffix = uuid.uuid4().hex[:12]
    return PubSubNames(GCP_PROJECT, f"jobs-{suffix}", f"jobs-sub-{suffix}", f"jobs-dead-{suffix}")


def gcp_backend_values(request: pytest.FixtureRequest) -> dict[str, str]:
    """Settings for LAXAI_BACKEND=gcp on the emulators: a clean Firestore and Pub/Sub names of this test."""
    request.getfixturevalue("clean_firestore")
    names = request.getfixturevalue("pubsub_names")
    return dict(LAXAI_BACKEND="gcp", TRAINING_TOPIC=names.topic, TRAINING_SUBSCRIPTION=names.subscription,
                DEAD_LETTER_TOPIC=names.dead_letter_topic)

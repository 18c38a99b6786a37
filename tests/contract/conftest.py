"""The contract suite runs every test against each backend: ``local`` and ``gcp`` (emulators).

Fixtures ``store``, ``queue`` and ``registry`` give the part under test for the
test's ``backend``; gcp ones are marked ``gcp`` (deselect with ``-m "not gcp"``).
"""

from __future__ import annotations

import pytest

from tests.gcp_fixtures import (  # noqa: F401 - fixtures, used by name
    GCP_PROJECT,
    clean_firestore,
    firestore_client,
    firestore_emulator,
    pubsub_emulator,
    pubsub_names,
)

BACKENDS = [pytest.param("local", id="local"), pytest.param("gcp", id="gcp", marks=pytest.mark.gcp)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def open_store(backend: str, tmp_path, request: pytest.FixtureRequest):
    """Makes stores of the backend on one database (another process would open its own)."""
    opened = []
    if backend == "gcp":
        request.getfixturevalue("clean_firestore")

    def make(write_gap: float = 0.0):
        if backend == "local":
            from orchestrator.stores.sqlite import SqliteJobStore

            made = SqliteJobStore(tmp_path / "laxai.db", watch_interval=0.02, write_gap=write_gap)
        else:
            from google.cloud import firestore

            from orchestrator.stores.firestore import FirestoreJobStore

            # Each store has its own client, as each process would.
            made = FirestoreJobStore(firestore.Client(project=GCP_PROJECT), "training_jobs", close_client=True,
                                     write_gap=write_gap)
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.close()


@pytest.fixture
def store(open_store):
    return open_store()


@pytest.fixture
def queue(backend: str, tmp_path, request: pytest.FixtureRequest):
    if backend == "local":
        from orchestrator.queues.local import LocalJobQueue

        made = LocalJobQueue(tmp_path / "laxai.db", ack_deadline=1.0, poll_interval=0.02)
    else:
        from orchestrator.queues.pubsub import PubSubJobQueue

        names = request.getfixturevalue("pubsub_names")
        made = PubSubJobQueue(names.project, names.topic, names.subscription,
                              dead_letter_topic=names.dead_letter_topic, max_delivery_attempts=5, ack_deadline=10)
        made.ensure_topology()
    yield made
    made.close()


@pytest.fixture
def registry(backend: str, tmp_path, request: pytest.FixtureRequest):
    if backend == "local":
        from orchestrator.registry.sqlite import SqliteModelRegistry

        made = SqliteModelRegistry(tmp_path / "laxai.db")
        yield made
        made.close()
    else:
        from orchestrator.registry.firestore import FirestoreModelRegistry

        request.getfixturevalue("clean_firestore")
        yield FirestoreModelRegistry(request.getfixturevalue("firestore_client"))

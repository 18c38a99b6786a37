"""open_gcp_parts on the emulators: the parts the gcp backend assembles work together."""

from __future__ import annotations

import pytest

from orchestrator.artifacts.local import LocalArtifactStore
from orchestrator.backends import open_backend
from orchestrator.config import Settings
from orchestrator.queues.pubsub import PubSubJobQueue
from orchestrator.registry.firestore import FirestoreModelRegistry
from orchestrator.stores.firestore import FirestoreJobStore
from tests.contract.support import make_job
from tests.gcp_fixtures import GCP_PROJECT

pytestmark = pytest.mark.gcp


def test_open_backend_gcp_on_the_emulators(clean_firestore, pubsub_names, tmp_path):
    settings = Settings(LAXAI_BACKEND="gcp", LAXAI_HOME=tmp_path / "home", GOOGLE_CLOUD_PROJECT=GCP_PROJECT,
                        TRAINING_TOPIC=pubsub_names.topic, TRAINING_SUBSCRIPTION=pubsub_names.subscription,
                        DEAD_LETTER_TOPIC=pubsub_names.dead_letter_topic)
    backend = open_backend(settings)
    try:
        assert isinstance(backend.store, FirestoreJobStore)
        assert isinstance(backend.queue, PubSubJobQueue)
        assert isinstance(backend.registry, FirestoreModelRegistry)
        assert isinstance(backend.artifacts, LocalArtifactStore)  # no ARTIFACT_BUCKET: one-laptop mode
        assert str(backend.artifacts.root).startswith(str(tmp_path / "home"))

        job, created = backend.store.create(make_job())
        assert created and backend.store.get(job.task_id) == job
        backend.queue.publish(job.task_id)  # the topology was created on the emulator
        (message,) = backend.queue.pull(timeout=10)
        assert message.task_id == job.task_id
        backend.queue.ack(message.ack_id)
    finally:
        backend.close()

"""Open the gcp backend's parts: Firestore store and registry, Pub/Sub queue, artifacts.

Emulator-aware: with ``FIRESTORE_EMULATOR_HOST`` / ``PUBSUB_EMULATOR_HOST`` set,
the client libraries connect there with anonymous credentials, and the Pub/Sub
topic and subscriptions are created if missing (tests, one-laptop mode).

``cloud_run_missing`` lists what the Cloud Run launcher needs and lacks (credentials,
``ARTIFACT_BUCKET``, ``WORKER_JOB_NAME``): ``laxai serve`` refuses to start without
them rather than accept jobs it can never launch.
"""

from __future__ import annotations

import os

from orchestrator.artifacts.base import ArtifactStore
from orchestrator.config import Settings
from orchestrator.queues.pubsub import PubSubJobQueue
from orchestrator.registry.firestore import FirestoreModelRegistry
from orchestrator.stores.firestore import FirestoreJobStore


def firestore_client(settings: Settings):  # -> google.cloud.firestore.Client
    """A client for GOOGLE_CLOUD_PROJECT (the emulator when FIRESTORE_EMULATOR_HOST is set)."""
    from google.cloud import firestore

    return firestore.Client(project=settings.GOOGLE_CLOUD_PROJECT)


def open_gcp_parts(settings: Settings) -> tuple[FirestoreJobStore, PubSubJobQueue, ArtifactStore,
                                                FirestoreModelRegistry]:
    """(store, queue, artifacts, registry) for ``LAXAI_BACKEND=gcp``."""
    client = firestore_client(settings)
    store = FirestoreJobStore(client, settings.FIRESTORE_COLLECTION, close_client=True,
                               write_gap=settings.write_gap)
    registry = FirestoreModelRegistry(client)
    queue = PubSubJobQueue.from_settings(settings)
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        queue.ensure_topology()
    artifacts: ArtifactStore
    if settings.ARTIFACT_BUCKET:
        from orchestrator.artifacts.gcs import GcsArtifactStore

        artifacts = GcsArtifactStore(settings.ARTIFACT_BUCKET, project=settings.GOOGLE_CLOUD_PROJECT)
    else:
        # No bucket (one-laptop mode on the emulators): checkpoints stay on this
        # machine under LAXAI_HOME, like the local backend. Cloud Run workers need
        # ARTIFACT_BUCKET, since their disks vanish with each execution.
        from orchestrator.artifacts.local import LocalArtifactStore

        settings.home.mkdir(parents=True, exist_ok=True)
        artifacts = LocalArtifactStore(settings.home / "artifacts")
    return store, queue, artifacts, registry


def cloud_run_missing(settings: Settings) -> list[str]:
    """What the Cloud Run launcher needs and this environment lacks, one line each (empty: ready)."""
    missing = []
    try:
        import google.auth
        from google.auth.exceptions import GoogleAuthError

        google.auth.default()
    except (GoogleAuthError, OSError, ValueError) as exc:
        text = " ".join(str(exc).split())[:200]
        missing.append(f"Google credentials (Application Default Credentials: {type(exc).__name__}: {text}); "
                       "on Cloud Run they come from the service account, elsewhere from "
                       "`gcloud auth application-default login` or GOOGLE_APPLICATION_CREDENTIALS")
    if not settings.ARTIFACT_BUCKET:
        missing.append("ARTIFACT_BUCKET: unset; Cloud Run workers keep checkpoints and models only in a "
                       "bucket (their disks vanish with each execution)")
    if not settings.WORKER_JOB_NAME.strip():
        missing.append("WORKER_JOB_NAME: empty; the Cloud Run job that runs the workers")
    return missing


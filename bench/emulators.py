"""The Firestore and Pub/Sub emulators for gcp-backend items, started once per run.

Uses ``tests/emulators.py`` (the test suite's launcher). When
FIRESTORE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST are already set, those emulators
are used. ``gcp_env`` gives a service the variables for a fresh set of names,
so items never see each other's jobs or messages.
"""

from __future__ import annotations

import os
import uuid

from tests import emulators

PROJECT = "laxai-bench"
_started: dict[str, emulators.Emulator] = {}


def hosts() -> dict[str, str]:
    """FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST, starting what is not running yet."""
    found = {}
    for kind in (emulators.FIRESTORE, emulators.PUBSUB):
        host = os.environ.get(kind.env_var)
        if not host:
            emulator = emulators.start(kind, project=PROJECT)
            _started[kind.name] = emulator
            os.environ[kind.env_var] = host = emulator.host
        found[kind.env_var] = host
    return found


def gcp_env() -> dict[str, str]:
    """Environment for ``laxai serve`` on the gcp backend with local workers, on fresh names."""
    suffix = uuid.uuid4().hex[:8]
    return {
        **hosts(),
        "LAXAI_BACKEND": "gcp",
        "LAXAI_LAUNCHER": "local",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "FIRESTORE_COLLECTION": f"jobs_{suffix}",
        "TRAINING_TOPIC": f"jobs-{suffix}",
        "TRAINING_SUBSCRIPTION": f"jobs-sub-{suffix}",
        "DEAD_LETTER_TOPIC": f"jobs-dead-{suffix}",
    }


def stop_all() -> None:
    """Stop the emulators this run started."""
    for name, emulator in list(_started.items()):
        emulator.stop()
        os.environ.pop(emulator.kind.env_var, None)
        del _started[name]


def clear_firestore() -> None:
    """Delete every document (locks included), so a new service starts from nothing."""
    emulators.clear_firestore(hosts()["FIRESTORE_EMULATOR_HOST"], PROJECT)

"""Fixtures for the Slack front end: a fake Slack Web API, the app in-process or as
``laxai serve``, and a sender that signs requests like Slack.

Tests that run a service (``make_inproc``/``inproc``, the notifier's rig) run once per
backend: ``[local]`` (SQLite) and ``[gcp]`` (the Firestore and Pub/Sub emulators,
marked ``gcp``: Firestore cleared and fresh Pub/Sub names for each test).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# tests/ is not a package: make tests.fakes and this folder's helpers importable in any import mode.
for path in (str(REPO), str(Path(__file__).resolve().parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from orchestrator.config import load_settings  # noqa: E402
from orchestrator.local_service import BackgroundService  # noqa: E402
from tests.fakes.fake_slack import FakeSlack  # noqa: E402
from tests.gcp_fixtures import (  # noqa: E402,F401 - fixtures, used by name
    clean_firestore,
    firestore_emulator,
    pubsub_emulator,
    pubsub_names,
)

from backends import BACKENDS, gcp_env  # noqa: E402
from slack_env import BOT_TOKEN, SIGNING_SECRET, TEAM, slack_env  # noqa: E402
from slack_requests import SlackSender  # noqa: E402


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def backend_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that selects ``backend``: nothing for local; for gcp the emulators,
    with an empty Firestore and Pub/Sub names no other test uses."""
    if backend == "local":
        return {}
    request.getfixturevalue("clean_firestore")
    names = request.getfixturevalue("pubsub_names")
    return gcp_env(names.project, names.topic, names.subscription, names.dead_letter_topic)


@pytest.fixture
def use_backend(backend_env: dict[str, str], monkeypatch) -> dict[str, str]:
    """Puts ``backend_env`` in this process's environment (Settings read it) for the test."""
    for name, value in backend_env.items():
        monkeypatch.setenv(name, value)
    return backend_env


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        yield fake


@pytest.fixture
def make_inproc(fake_slack, use_backend, monkeypatch, tmp_path):
    """The service in this process (uvicorn on a free port), without a dispatcher:
    jobs stay queued unless a test moves them. Slack is installed through the real
    ``laxai.extensions`` entry point, configured by environment variables."""
    services = []

    def make(**env: str) -> BackgroundService:
        for name, value in slack_env(fake_slack, **env).items():
            monkeypatch.setenv(name, value)
        settings = load_settings(LAXAI_HOME=tmp_path / f"home-{len(services)}")
        service = BackgroundService(settings, dispatch=False).__enter__()
        services.append(service)
        service.fake = fake_slack
        service.sender = SlackSender(service.url, SIGNING_SECRET, team_id=TEAM)
        service.notifier = service.runtime.extras["slack_notifier"]
        service.store = service.runtime.backend.store
        return service

    yield make
    for service in services:
        service.sender.close()
        service.__exit__(None, None, None)


@pytest.fixture
def inproc(make_inproc):
    return make_inproc()

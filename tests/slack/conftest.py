"""Fixtures for the Slack front end: a fake Slack Web API, the app in-process or as
``laxai serve``, and a sender that signs requests like Slack.

Tests that run a service (``make_inproc``/``inproc``, the notifier's rig) run once per
backend: ``[local]`` (SQLite) and ``[gcp]`` (the Firestore and Pub/Sub emulators,
marked ``gcp``: Firestore cleared and fresh Pub/Sub names for each test).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.config import load_settings
from orchestrator.serve import ServiceThread
from tests.fakes.fake_slack import FakeSlack
from tests.gcp_fixtures import (  # noqa: F401 - fixtures, used by name
    clean_firestore,
    firestore_emulator,
    pubsub_emulator,
    pubsub_names,
)
from tests.slack.backends import BACKENDS, gcp_env
from tests.slack.slack_env import BOT_TOKEN, SIGNING_SECRET, TEAM, slack_env
from tests.slack.slack_requests import SlackSender


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

    def make(**env: str) -> ServiceThread:
        for name, value in slack_env(fake_slack, **env).items():
            monkeypatch.setenv(name, value)
        settings = load_settings(LAXAI_HOME=tmp_path / f"home-{len(services)}")
        service = ServiceThread(settings, dispatch=False).__enter__()
        services.append(service)
        service.fake = fake_slack
        service.sender = SlackSender(service.url, SIGNING_SECRET, team_id=TEAM)
        service.notifier = service.server.config.app.state.slack.notifier
        service.store = service.runtime.backend.store
        return service

    yield make
    for service in services:
        service.sender.close()
        service.__exit__(None, None, None)


@pytest.fixture
def inproc(make_inproc):
    return make_inproc()

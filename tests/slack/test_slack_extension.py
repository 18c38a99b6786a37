"""The laxai.extensions hook and the Slack app manifest."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI

from bot.config import SlackSettings, load_slack_settings
from bot.extension import EVENTS_PATH, install
from bot.notifier import Notifier
from orchestrator.config import load_settings
from orchestrator.serve import create_runtime

from tests.slack.slack_env import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtime(tmp_path):
    runtime = create_runtime(load_settings(LAXAI_HOME=tmp_path / "home"), dispatch=False)
    yield runtime
    runtime.stop()


def routes(app: FastAPI) -> set[tuple[str, str]]:
    return {(route.path, method) for route in app.routes for method in getattr(route, "methods", ())}


def test_the_entry_point_is_registered():
    (ep,) = [e for e in entry_points(group="laxai.extensions") if e.name == "slack"]
    assert ep.load() is install


def test_install_declines_without_tokens_and_says_why(runtime, caplog):
    caplog.set_level(logging.INFO)
    app = FastAPI()
    assert install(app, runtime, SlackSettings(SLACK_BOT_TOKEN=BOT_TOKEN)) is False
    assert "SLACK_SIGNING_SECRET not set" in caplog.text
    assert (EVENTS_PATH, "POST") not in routes(app)
    assert getattr(app.state, "slack", None) is None
    assert not [s.name for s in runtime.background if s.name.startswith("slack")]


def test_install_mounts_the_endpoint_and_registers_the_notifier(runtime, fake_slack):
    app = FastAPI()
    settings = SlackSettings(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                             SLACK_API_URL=fake_slack.url)
    assert install(app, runtime, settings) is True
    assert (EVENTS_PATH, "POST") in routes(app)
    assert isinstance(app.state.slack.notifier, Notifier)
    assert "slack-notifier" in [s.name for s in runtime.background]
    assert "slack-socket-mode" not in [s.name for s in runtime.background]


def test_socket_mode_connects_with_the_app_token_and_failures_do_not_stop_the_service(runtime, fake_slack, caplog):
    runtime.socket_mode = True
    settings = SlackSettings(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                             SLACK_APP_TOKEN=APP_TOKEN, SLACK_API_URL=fake_slack.url)
    assert install(FastAPI(), runtime, settings) is True
    (service,) = [s for s in runtime.background if s.name == "slack-socket-mode"]
    service.start()  # the fake has no WebSocket server: connecting fails, and is only logged
    service.stop()
    (call,) = fake_slack.calls_to("apps.connections.open")
    assert call.token == APP_TOKEN
    assert "Socket Mode could not connect" in caplog.text
    assert APP_TOKEN not in caplog.text


def test_socket_mode_without_an_app_token_serves_http_only(runtime, fake_slack, caplog):
    runtime.socket_mode = True
    settings = SlackSettings(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                             SLACK_API_URL=fake_slack.url)
    assert install(FastAPI(), runtime, settings) is True
    assert "slack-socket-mode" not in [s.name for s in runtime.background]
    assert "needs SLACK_APP_TOKEN" in caplog.text


def test_settings_come_from_the_env_file_and_lists_are_comma_separated(tmp_path, monkeypatch):
    env_file = tmp_path / "cloud-config.env"
    env_file.write_text('export SLACK_ADMIN_USERS="U1, U2"\nexport SLACK_ALLOWED_CHANNELS=""\n'
                        'export SLACK_API_URL="http://127.0.0.1:9/api"\n')
    monkeypatch.setenv("LAXAI_CONFIG", str(env_file))
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "from-the-environment")
    settings = load_slack_settings()
    assert settings.admin_users == {"U1", "U2"}
    assert settings.allowed_channels is None  # empty: every channel
    assert settings.api_url == "http://127.0.0.1:9/api/"
    assert settings.signing_secret == "from-the-environment"
    assert "from-the-environment" not in repr(settings)
    assert not settings.configured  # no bot token


def test_the_manifest_declares_the_command_interactivity_and_scopes():
    manifest = yaml.safe_load((REPO / "manifest.yml").read_text())
    assert len(manifest["display_information"]["name"]) <= 35
    assert 175 <= len(manifest["display_information"]["long_description"]) <= 4000
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/train" and command["usage_hint"] and command["description"]
    assert command["url"] == "https://YOUR-SERVICE-URL/slack/events"
    assert manifest["settings"]["interactivity"] == {"is_enabled": True,
                                                     "request_url": "https://YOUR-SERVICE-URL/slack/events"}
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert {"commands", "chat:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["features"]["bot_user"]["display_name"]

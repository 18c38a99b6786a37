"""The model registry over real HTTP on a real SQLite store: GET /models with aliases, promoting a version
(admin, or the tenant's tokens for its own API/CLI runs; a Slack user's version needs an admin), other
tenants kept out, bad input named; and `laxai models` / `laxai models promote` against the same service."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from orchestrator.cli.commands import app as cli
from orchestrator.config import load_settings
from orchestrator.registry.base import ModelEntry
from orchestrator.serve import ServiceThread

ADMIN_A, USER_A, ADMIN_B = "admin-a-123456", "user-a-123456", "admin-b-123456"


@pytest.fixture
def service(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path / "home",
                             LAXAI_API_TOKENS=f"{ADMIN_A}:team-a:admin,{USER_A}:team-a,{ADMIN_B}:team-b:admin")
    with ServiceThread(settings, dispatch=False) as svc:
        registry = svc.runtime.backend.registry
        for n, (source, user, m) in enumerate([("cli", None, 0.30), ("slack", "U0456", 0.45), ("api", None, 0.40)]):
            registry.register(ModelEntry(tenant_id="team-a", name="players", task_id=f"a{n}", architecture="yolo11n",
                                         checkpoint=f"/a/{n}/best.pt", metrics={"mAP50-95": m, "mAP50": m + 0.2},
                                         source=source, submitted_by=user))
        registry.register(ModelEntry(tenant_id="team-b", name="players", task_id="b0", architecture="yolo11n",
                                     checkpoint="/b/best.pt", source="api"))
        yield svc


def client(service, token: str) -> httpx.Client:
    return httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def production(service, tenant: str = "team-a") -> int | None:
    found = [a.version for a in service.runtime.backend.registry.aliases(tenant, "players") if a.alias == "production"]
    return found[0] if found else None


def test_promote_moves_production_for_the_submitter_and_refuses_a_teammate(service):
    with client(service, USER_A) as user:
        done = user.post("/models/players/versions/v3/promote")
        assert done.status_code == 200, done.text  # v3 came from the tenant's API: its tokens may promote it
        body = done.json()
        assert body["changed"] and body["alias"]["version"] == 3 and body["alias"]["set_by"] == "api:team-a"
        assert body["model"]["aliases"] == ["production"]
        assert user.post("/models/players/versions/3/promote").json()["changed"] is False  # already there
        refused = user.post("/models/players/versions/v2/promote")  # a Slack user's run: not this token's
        assert refused.status_code == 403 and "only an admin or the submitter of players v2" in refused.json()["error"]
        assert production(service) == 3  # nothing changed
        listing = user.get("/models", params={"name": "players"}).json()
        assert [(m["version"], m["aliases"]) for m in listing["models"]] == [(3, ["production"]), (2, []), (1, [])]
        assert [(a["alias"], a["version"], a["previous"]) for a in listing["aliases"]] == [("production", 3, None)]
    with client(service, ADMIN_A) as admin:
        moved = admin.post("/models/players/versions/v2/promote").json()
        assert moved["alias"]["version"] == 2 and moved["alias"]["previous"] == 3
        staged = admin.post("/models/players/versions/v1/promote", params={"alias": "staging"})
        assert staged.status_code == 200 and staged.json()["alias"]["alias"] == "staging"
    assert production(service) == 2


def test_other_tenants_unknown_versions_and_bad_input(service):
    with client(service, ADMIN_B) as other:
        assert [m["task_id"] for m in other.get("/models").json()["models"]] == ["b0"]
        missing = other.post("/models/players/versions/v3/promote")  # team-a has a v3, team-b has not
        assert missing.status_code == 404 and "no version v3 of model 'players'" in missing.json()["error"]
    assert production(service) is None and production(service, "team-b") is None
    with client(service, ADMIN_A) as admin:
        assert admin.post("/models/nope/versions/v1/promote").status_code == 404
        bad = admin.post("/models/players/versions/latest/promote")
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "version"
        bad = admin.post("/models/players/versions/v1/promote", params={"alias": "Prod!"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "alias"
        assert "lower-case letters" in bad.json()["detail"][0]["message"]
    with httpx.Client(base_url=service.url) as anonymous:
        assert anonymous.post("/models/players/versions/v1/promote").status_code == 401
    assert production(service) is None


def test_laxai_models_lists_and_promotes(service, monkeypatch):
    monkeypatch.setenv("LAXAI_URL", service.url)
    runner = CliRunner()
    promoted = runner.invoke(cli, ["models", "promote", "players", "v3", "--token", USER_A])
    assert promoted.exit_code == 0, promoted.output
    assert "players v3 is now production" in promoted.output
    listed = runner.invoke(cli, ["models", "players", "--token", USER_A])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if " v3 " in line)
    assert "production" in row and "0.400" in row
    assert "production" not in next(line for line in listed.output.splitlines() if " v2 " in line)
    refused = runner.invoke(cli, ["models", "promote", "players", "v2", "--token", USER_A])
    assert refused.exit_code == 2 and "only an admin or the submitter" in refused.output
    assert production(service) == 3

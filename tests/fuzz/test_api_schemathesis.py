"""Schemathesis against the OpenAPI spec: whatever is sent, no 500s and no tracebacks."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from orchestrator.config import load_settings
from orchestrator.serve import ServiceThread

TOKEN = "fuzz-token-123456"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    config = load_settings(LAXAI_HOME=tmp_path_factory.mktemp("fuzz"), LAXAI_API_TOKENS=f"{TOKEN}:fuzz")
    with ServiceThread(config, dispatch=False) as svc:
        yield svc


@pytest.fixture
def api_schema(service):
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_no_tracebacks(case):
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    assert "Traceback" not in response.text
    content_type = response.headers.get("content-type") or [""]
    assert content_type[0].startswith("application/json"), (case.path, content_type)

"""Settings: the seed's env file is loaded, the environment overrides it, bad values are named."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.config import REPO_ROOT, load_settings


def test_seed_variables_come_from_the_env_file(monkeypatch):
    for name in ("GPU_TYPE", "CPU_LIMIT", "MEMORY_LIMIT", "MAX_CONCURRENT_JOBS", "TRAINING_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    text = (REPO_ROOT / "config" / "cloud-config.env").read_text()
    assert 'export GPU_TYPE="nvidia-l4"' in text
    settings = load_settings()
    assert (settings.GPU_TYPE, settings.CPU_LIMIT, settings.MEMORY_LIMIT) == ("nvidia-l4", "4000m", "16Gi")
    assert settings.MAX_CONCURRENT_JOBS == 3 and settings.TRAINING_TIMEOUT == 25200
    assert (settings.CLOUD_REGION, settings.SERVICE_ACCOUNT, settings.REGISTRY_REPO) == ("us-central1", "googlebatch", "laxai-repo")


def test_environment_overrides_the_file(monkeypatch):
    monkeypatch.setenv("GPU_TYPE", "nvidia-t4")
    monkeypatch.setenv("MAX_CONCURRENT_JOBS", "7")
    settings = load_settings()
    assert settings.GPU_TYPE == "nvidia-t4" and settings.MAX_CONCURRENT_JOBS == 7


def test_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("GPU_TYPE", "quantum")
    with pytest.raises(ValidationError, match="GPU_TYPE"):
        load_settings()


def test_api_tokens_bind_tenants_and_a_local_token_is_generated(tmp_path):
    assert load_settings(LAXAI_API_TOKENS="t1:team-a,t2:team-b").api_tokens == {"t1": "team-a", "t2": "team-b"}
    generated = load_settings(LAXAI_HOME=tmp_path).api_tokens
    token = next(iter(generated))
    assert generated == {token: "local"} and len(token) >= 24
    assert (tmp_path / "api-token").stat().st_mode & 0o077 == 0  # readable by its owner only
    assert load_settings(LAXAI_HOME=tmp_path).api_tokens == generated  # stable across restarts


def test_the_store_write_gap_is_one_second_on_gcp_and_off_locally(tmp_path):
    assert load_settings(LAXAI_HOME=tmp_path).write_gap == 0  # SQLite has no per-document write limit
    assert load_settings(LAXAI_HOME=tmp_path, LAXAI_BACKEND="gcp").write_gap == 1.0  # Firestore: ~1 write/s
    assert load_settings(LAXAI_HOME=tmp_path, LAXAI_BACKEND="gcp", STORE_WRITE_GAP=0).write_gap == 0
    assert load_settings(LAXAI_HOME=tmp_path, STORE_WRITE_GAP=0.5).write_gap == 0.5

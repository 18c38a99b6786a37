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
    monkeypatch.setenv("GPU_TYPE", "cpu")
    monkeypatch.setenv("MAX_CONCURRENT_JOBS", "7")
    settings = load_settings()
    assert settings.GPU_TYPE == "cpu" and settings.MAX_CONCURRENT_JOBS == 7


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


# -- settings that open a hole refuse to start; secrets from the config file are redacted (14E) --

EMULATORS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")


def test_push_auth_none_on_gcp_refuses_to_start_outside_the_emulators(monkeypatch):
    for name in EMULATORS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="LAXAI_PUSH_AUTH") as refused:
        load_settings(LAXAI_BACKEND="gcp", LAXAI_PUSH_AUTH="none")
    assert "FIRESTORE_EMULATOR_HOST" in str(refused.value)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8086")  # one emulator is not "the emulators"
    with pytest.raises(ValidationError, match="LAXAI_PUSH_AUTH"):
        load_settings(LAXAI_BACKEND="gcp", LAXAI_PUSH_AUTH="none")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")
    assert load_settings(LAXAI_BACKEND="gcp", LAXAI_PUSH_AUTH="none").LAXAI_PUSH_AUTH == "none"
    assert load_settings(LAXAI_BACKEND="local", LAXAI_PUSH_AUTH="none").LAXAI_PUSH_AUTH == "none"


def test_laxai_serve_with_push_auth_off_on_real_gcp_exits_naming_the_variable(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in EMULATORS}
    env.update(LAXAI_BACKEND="gcp", LAXAI_PUSH_AUTH="none", LAXAI_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "serve", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "LAXAI_PUSH_AUTH" in done.stdout + done.stderr


def test_store_timeout_defaults_to_10s_and_keeps_its_old_name(monkeypatch):
    monkeypatch.delenv("STORE_TIMEOUT", raising=False)
    monkeypatch.delenv("LAXAI_SQLITE_BUSY_TIMEOUT", raising=False)
    assert load_settings().STORE_TIMEOUT == 10
    monkeypatch.setenv("LAXAI_SQLITE_BUSY_TIMEOUT", "0.3")
    assert load_settings().STORE_TIMEOUT == 0.3
    monkeypatch.setenv("STORE_TIMEOUT", "0")
    with pytest.raises(ValidationError, match="STORE_TIMEOUT"):
        load_settings()


REDACT_PROBE = """
import logging, sys
from orchestrator.logs import configure_logging
configure_logging("INFO")
log = logging.getLogger("probe")
for secret in sys.argv[1:]:
    log.info("value seen: %s", secret)
"""


def test_secrets_from_the_config_file_are_redacted_from_logs(tmp_path):
    import os
    import subprocess
    import sys

    config = tmp_path / "laxai.env"
    config.write_text('LAXAI_API_TOKENS="filetok-123456789:team-a,other-987654321:team-b"\n'
                      "SLACK_SIGNING_SECRET=file-signing-secret-abc\nSLACK_BOT_TOKEN=bot-token-from-file-1\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LAXAI_API_TOKENS", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN")}
    env["LAXAI_CONFIG"] = str(config)
    secrets = ["filetok-123456789", "other-987654321", "file-signing-secret-abc", "bot-token-from-file-1"]
    done = subprocess.run([sys.executable, "-c", REDACT_PROBE, *secrets, "not-a-secret-42"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("value seen: [redacted]") == len(secrets), done.stderr
    assert "value seen: not-a-secret-42" in done.stderr  # the filter is selective, not blanket
    assert not any(secret in done.stderr for secret in secrets)


def test_secret_fields_of_the_settings_in_use_are_redacted(tmp_path):
    from orchestrator.logs import secret_values

    settings = load_settings(LAXAI_HOME=tmp_path, LAXAI_API_TOKENS="kwarg-token-555:team-a")
    assert "kwarg-token-555" in secret_values(settings=[settings])

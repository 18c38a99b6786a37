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


# -- list settings are parsed by validators at start: a bad value names its variable (11A) --

SECRET_TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize("raw, why", [
    (f"{SECRET_TOKEN}", "entry 1 is not token:tenant"),  # no tenant
    (f"{SECRET_TOKEN}:", "entry 1 is not token:tenant"),
    (f":team-a,{SECRET_TOKEN}:team-b", "entry 1 is not token:tenant"),  # no token
    (f"ok-token-1:team-a,{SECRET_TOKEN}:team b", "entry 2 has a tenant that is not a tenant id"),
    (f"{SECRET_TOKEN}:team-a,{SECRET_TOKEN}:team-b", "entry 2 repeats an earlier token"),
    (f"{SECRET_TOKEN}:-team", "entry 1 has a tenant that is not a tenant id"),
])
def test_a_malformed_api_token_list_fails_at_start_naming_it_without_the_secret(raw, why):
    with pytest.raises(ValidationError) as refused:
        load_settings(LAXAI_API_TOKENS=raw)
    text = str(refused.value)
    assert "LAXAI_API_TOKENS" in text and why in text and "token1:tenant-a" in text
    assert SECRET_TOKEN not in text and "s3cret" not in text


def test_api_tokens_are_parsed_once_with_blanks_ignored_and_never_printed(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path, LAXAI_API_TOKENS=f" {SECRET_TOKEN} : team-a ,, t2:team-b:x ")
    assert settings.api_tokens == {SECRET_TOKEN: "team-a", "t2": "team-b:x"}  # a tenant may hold a colon
    assert SECRET_TOKEN not in repr(settings) and SECRET_TOKEN not in str(settings.model_dump())
    blank = load_settings(LAXAI_HOME=tmp_path, LAXAI_API_TOKENS=" , ")
    assert blank.LAXAI_API_TOKENS is None and set(blank.api_tokens.values()) == {"local"}


@pytest.mark.parametrize("name", ["PUSH_AUDIENCE", "EVENTARC_AUDIENCE", "TICK_AUDIENCE"])
def test_audience_lists_are_split_and_a_missing_comma_fails_at_start(name, monkeypatch):
    monkeypatch.setenv(name, "https://svc.example/a, https://svc.example/b,")
    assert getattr(load_settings(), name) == ("https://svc.example/a", "https://svc.example/b")
    monkeypatch.setenv(name, " , ")
    assert getattr(load_settings(), name) is None  # blank: unset
    monkeypatch.setenv(name, "https://svc.example/a https://svc.example/b")
    with pytest.raises(ValidationError, match=f"{name} takes comma-separated audiences") as refused:
        load_settings()
    assert "(got 'https://svc.example/a https://svc.example/b'" in str(refused.value)


def test_audiences_from_settings_are_what_the_oidc_gate_accepts():
    from orchestrator.api.oidc import audiences

    settings = load_settings(PUSH_AUDIENCE="https://a/push,https://b/push")
    assert audiences(settings.PUSH_AUDIENCE) == ["https://a/push", "https://b/push"]
    assert audiences(load_settings().EVENTARC_AUDIENCE) == []


@pytest.mark.parametrize("name, value, words", [
    ("GPU_TYPES_AVAILABLE", "nvidia-l4, quantum", "GPU_TYPES_AVAILABLE must list some of"),
    ("GPU_TYPES_AVAILABLE", " , ", "GPU_TYPES_AVAILABLE must list some of"),
    ("LAXAI_DATA_ROOTS", "team-a=relative/dir", "LAXAI_DATA_ROOTS roots must be absolute"),
    ("DATASET_BUCKETS", "team-a=s3://x/", "DATASET_BUCKETS prefixes must look like gs://"),
])
def test_every_other_list_setting_fails_at_start_naming_the_variable(name, value, words, monkeypatch):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=words) as refused:
        load_settings()
    assert name in str(refused.value)


def test_gpu_types_available_is_a_parsed_tuple(monkeypatch):
    monkeypatch.setenv("GPU_TYPES_AVAILABLE", " NVIDIA-L4 ,cpu,")
    assert load_settings().GPU_TYPES_AVAILABLE == ("nvidia-l4", "cpu")


def test_laxai_serve_with_malformed_api_tokens_exits_naming_the_variable_and_not_the_token(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, LAXAI_HOME=str(tmp_path), LAXAI_API_TOKENS=f"ok-token-1:team-a,{SECRET_TOKEN}")
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "serve", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "LAXAI_API_TOKENS" in output and "entry 2 is not token:tenant" in output
    assert SECRET_TOKEN not in output and "ok-token-1" not in output and "Traceback" not in output


def test_a_stop_retry_ceiling_below_the_first_wait_fails_at_start_naming_both(monkeypatch):
    monkeypatch.setenv("STOP_RETRY_SECONDS", "30")
    monkeypatch.setenv("STOP_RETRY_MAX_SECONDS", "10")
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert "STOP_RETRY_MAX_SECONDS" in str(caught.value) and "STOP_RETRY_SECONDS (30)" in str(caught.value)
    monkeypatch.setenv("STOP_RETRY_MAX_SECONDS", "30")
    settings = load_settings()
    assert (settings.STOP_RETRY_SECONDS, settings.STOP_RETRY_MAX_SECONDS) == (30, 30)

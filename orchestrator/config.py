"""Settings, from ``config/cloud-config.env`` (the seed's variables) with environment overrides.

Every process (service, worker, CLI) reads the same Settings. ``LAXAI_CONFIG``
points at another env file; ``LAXAI_HOME`` holds local state.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.domain.cost import GPU_TYPES, Rates, parse_cpu, parse_memory, rates_for

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_config_file() -> Path:
    explicit = os.environ.get("LAXAI_CONFIG")
    if explicit:
        return Path(explicit)
    here = Path("config/cloud-config.env")
    return here if here.exists() else REPO_ROOT / "config" / "cloud-config.env"


class Settings(BaseSettings):
    """All configuration, by the environment variable names the seed uses."""

    model_config = SettingsConfigDict(env_file_encoding="utf-8", extra="ignore", case_sensitive=True)

    # --- the seed's variables (config/cloud-config.env) ---
    GPU_TYPE: str = "nvidia-l4"
    CPU_LIMIT: str = "4000m"
    MEMORY_LIMIT: str = "16Gi"
    GPU_COUNT: int = Field(1, ge=0, le=8)
    CLOUD_REGION: str = "us-central1"
    SERVICE_ACCOUNT: str = "googlebatch"
    REGISTRY_REPO: str = "laxai-repo"
    MAX_CONCURRENT_JOBS: int = Field(3, ge=1)
    TRAINING_TIMEOUT: float = Field(25200, gt=0)  # seconds of training per job, all executions together

    # --- orchestration ---
    LAXAI_BACKEND: Literal["local", "gcp"] = "local"
    LAXAI_HOME: Path = Path(".laxai")
    MAX_JOBS_PER_TENANT: int = Field(2, ge=1)
    LEASE_SECONDS: float = Field(60, gt=0)  # a worker that misses heartbeats this long is presumed lost
    STARTUP_GRACE_SECONDS: float = Field(600, gt=0)  # from launch to the worker's first heartbeat
    MAX_RECOVERIES: int = Field(3, ge=0)  # lost executions before a job fails
    TASK_TIMEOUT: float = Field(0, ge=0)  # the platform's cap per execution (0: none); Cloud Run GPU: 3600
    TASK_TIMEOUT_MARGIN: float = Field(120, ge=0)  # checkpoint and exit this long before TASK_TIMEOUT
    CANCEL_GRACE_SECONDS: float = Field(60, gt=0)  # then the launcher stops the execution hard
    CANCEL_POLL_SECONDS: float = Field(1.0, gt=0)  # how often a worker looks for a cancel request (a read)
    PROGRESS_INTERVAL: float = Field(2.0, ge=0)  # at most one progress write per this many seconds
    DISPATCH_INTERVAL: float = Field(1.0, gt=0)
    # Least seconds between two writes to one job document, by any writer: the store's update waits
    # for it (Firestore sustains ~1 write/s per document).
    # Unset: 1.0 on the gcp backend, 0 (no gap) on local, where SQLite has no such limit and the
    # dispatch latency matters more. See ``write_gap``.
    STORE_WRITE_GAP: float | None = Field(None, ge=0, le=10)

    # --- REST API ---
    PORT: int = 8080
    LAXAI_API_TOKENS: SecretStr | None = None  # "token1:tenant-a,token2:tenant-b"
    LAXAI_URL: str | None = None  # where the CLI finds the service
    MAX_BODY_BYTES: int = 64 * 1024

    # --- worker ---
    WANDB_PROJECT: str = "laxai-train"
    WANDB_MODE: str = "offline"
    YOLO_DEVICE: str | None = None  # force "cpu" or "0"; default: the GPU when present

    # --- gcp backend ---
    GOOGLE_CLOUD_PROJECT: str = "laxai-local"
    FIRESTORE_COLLECTION: str = "training_jobs"
    TRAINING_TOPIC: str = "training-jobs"
    TRAINING_SUBSCRIPTION: str = "training-jobs-sub"
    DEAD_LETTER_TOPIC: str = "training-jobs-dead-letter"
    WORKER_JOB_NAME: str = "laxai-training-worker"
    ARTIFACT_BUCKET: str | None = None
    LAXAI_LAUNCHER: Literal["auto", "local", "cloudrun"] = "auto"
    PUSH_AUDIENCE: str | None = None  # OIDC audience(s), comma-separated, of Pub/Sub pushes to /pubsub/push
    PUSH_SERVICE_ACCOUNT: str | None = None  # the account Pub/Sub, Eventarc and Cloud Scheduler sign as

    # --- push delivery: Pub/Sub push, Eventarc, Cloud Scheduler (orchestrator/api/push.py, eventarc.py) ---
    # pull: the dispatcher loop pulls the queue; push: Pub/Sub pushes to /pubsub/push and the loop only
    # ticks every DISPATCH_INTERVAL (lease sweeps, freed capacity).
    LAXAI_DISPATCH: Literal["pull", "push"] = "pull"
    # watch: change listeners follow the store's own feed (SQLite polling, Firestore on_snapshot);
    # eventarc: they get the Firestore events Eventarc posts to /eventarc/firestore.
    LAXAI_CHANGE_FEED: Literal["watch", "eventarc"] = "watch"
    # oidc: the push endpoints need a Google-signed ID token (refused while their audience is unset);
    # none: accept unsigned calls when the audience is unset (local runs and emulators only).
    LAXAI_PUSH_AUTH: Literal["oidc", "none"] = "oidc"
    EVENTARC_AUDIENCE: str | None = None  # comma-separated audiences accepted on /eventarc/firestore
    TICK_AUDIENCE: str | None = None  # OIDC audience of Cloud Scheduler's calls to /tasks/tick
    OIDC_CERTS_URL: str = "https://www.googleapis.com/oauth2/v1/certs"  # Google's ID-token signing certs

    @field_validator("GPU_TYPE")
    @classmethod
    def _known_gpu(cls, value: str) -> str:
        if value not in GPU_TYPES:
            raise ValueError(f"GPU_TYPE must be one of {', '.join(GPU_TYPES)} (got {value!r})")
        return value

    @field_validator("CPU_LIMIT")
    @classmethod
    def _cpu(cls, value: str) -> str:
        parse_cpu(value)
        return value

    @field_validator("MEMORY_LIMIT")
    @classmethod
    def _memory(cls, value: str) -> str:
        parse_memory(value)
        return value

    # --- derived ---
    @property
    def home(self) -> Path:
        return self.LAXAI_HOME.expanduser().resolve()

    @property
    def db_path(self) -> Path:
        return self.home / "laxai.db"

    @property
    def write_gap(self) -> float:
        """Seconds the dispatcher and a worker leave between their writes to one job document."""
        if self.STORE_WRITE_GAP is not None:
            return self.STORE_WRITE_GAP
        return 1.0 if self.LAXAI_BACKEND == "gcp" else 0.0

    def rates(self, gpu_type: str | None = None) -> Rates:
        return rates_for(gpu_type or self.GPU_TYPE, self.GPU_COUNT, self.CPU_LIMIT, self.MEMORY_LIMIT)

    @cached_property
    def api_tokens(self) -> dict[str, str]:
        """token -> tenant. Locally, when unset, one token is generated and kept under LAXAI_HOME."""
        raw = self.LAXAI_API_TOKENS.get_secret_value() if self.LAXAI_API_TOKENS else ""
        if raw.strip():
            pairs = [item.strip().split(":", 1) for item in raw.split(",") if item.strip()]
            bad = [p[0][:4] + "..." for p in pairs if len(p) != 2 or not p[0] or not p[1]]
            if bad:
                raise ValueError("LAXAI_API_TOKENS must look like token1:tenant-a,token2:tenant-b")
            return {token: tenant for token, tenant in pairs}
        return {local_token(self.home): "local"}


def local_token(home: Path) -> str:
    """The generated token for the local service (created once, mode 0600)."""
    path = home / "api-token"
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def load_settings(**overrides: object) -> Settings:
    """Settings from the env file, then the environment, then explicit overrides."""
    return Settings(_env_file=default_config_file(), **overrides)  # type: ignore[call-arg]

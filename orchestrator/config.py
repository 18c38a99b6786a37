"""Settings, from ``config/cloud-config.env`` (the seed's variables) with environment overrides.

Every process (service, worker, CLI) reads the same Settings. ``LAXAI_CONFIG``
points at another env file; ``LAXAI_HOME`` holds local state.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator.config_lists import (
    ApiToken,
    CommaList,
    parse_api_tokens,
    parse_audiences,
    parse_budgets_setting,
    split_commas,
)
from orchestrator.domain.budget import Budget
from orchestrator.domain.cost import GPU_TYPES, Rates, parse_cpu, parse_memory, rates_for

REPO_ROOT = Path(__file__).resolve().parent.parent
# Set (both) when the gcp backend talks to Google's local emulators rather than a real project.
EMULATOR_HOSTS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")


def default_config_file() -> Path:
    explicit = os.environ.get("LAXAI_CONFIG")
    if explicit:
        return Path(explicit)
    here = Path("config/cloud-config.env")
    return here if here.exists() else REPO_ROOT / "config" / "cloud-config.env"


class DerivedSettings:
    """What the settings imply (paths, prices, tokens): kept apart from the fields and their checks."""

    def data_roots(self, tenant: str) -> list[Path]:
        """Local directories the tenant's datasets and weights files may come from (its own first)."""
        from orchestrator.trust.roots import local_roots

        return local_roots(self.home, tenant, self.LAXAI_DATA_ROOTS)

    def dataset_prefixes(self, tenant: str) -> list[str]:
        """gs:// prefixes the tenant's datasets may come from."""
        from orchestrator.trust.roots import bucket_prefixes

        return bucket_prefixes(self.ARTIFACT_BUCKET, tenant, self.DATASET_BUCKETS)

    @property
    def require_gpu(self) -> bool:
        """Whether a worker must fail rather than train on the CPU (REQUIRE_GPU, else on Cloud Run)."""
        return self.REQUIRE_GPU if self.REQUIRE_GPU is not None else bool(self.CLOUD_RUN_JOB)

    @property
    def home(self) -> Path:
        return self.LAXAI_HOME.expanduser().resolve()

    @property
    def db_path(self) -> Path:
        return self.home / "laxai.db"

    @property
    def write_gap(self) -> float:
        """The write budget's gap (orchestrator/stores/write_budget.py): STORE_WRITE_GAP, else 1 s on gcp, 0 locally."""
        if self.STORE_WRITE_GAP is not None:
            return self.STORE_WRITE_GAP
        return 1.0 if self.LAXAI_BACKEND == "gcp" else 0.0

    @property
    def worker_memory_bytes(self) -> int | None:
        """The enforced memory limit of a local worker, in bytes; None when turned off."""
        raw = self.WORKER_MEMORY_LIMIT if self.WORKER_MEMORY_LIMIT is not None else self.MEMORY_LIMIT
        if raw.strip().lower() == "none":
            return None
        return int(parse_memory(raw) * 2**30)

    def rates(self, gpu_type: str | None = None) -> Rates:
        return rates_for(gpu_type or self.GPU_TYPE, self.GPU_COUNT, self.CPU_LIMIT, self.MEMORY_LIMIT)

    @cached_property
    def api_tokens(self) -> dict[str, str]:
        """token -> tenant. Locally, when unset, one token is generated and kept under LAXAI_HOME."""
        if self.LAXAI_API_TOKENS:
            return {entry.token.get_secret_value(): entry.tenant for entry in self.LAXAI_API_TOKENS}
        return {local_token(self.home): "local"}

    @cached_property
    def admin_tokens(self) -> frozenset[str]:
        """Tokens that may approve held jobs and set budgets (``token:tenant:admin``). Locally, when
        LAXAI_API_TOKENS is unset, the generated token is the operator's own: an admin's."""
        if self.LAXAI_API_TOKENS:
            return frozenset(e.token.get_secret_value() for e in self.LAXAI_API_TOKENS if e.admin)
        return frozenset(self.api_tokens)


class CostSettings(BaseSettings):
    """What a tenant may queue and spend: fair share, the estimate before launch, budgets (a part of
    Settings, on its own for size; its fields come first in Settings' field order)."""

    # --- fair share (14B: orchestrator/domain/fair_share.py, JobService.submit) ---
    # Queued jobs one tenant may have; a submission above it is refused (REST 429, Slack ephemeral).
    MAX_QUEUED_PER_TENANT: int = Field(100, ge=1)

    # --- the estimate before launch (issue 15: orchestrator/estimates.py) ---
    # Seconds the completed-job history behind estimates is kept in memory: a burst of submits queries
    # the store once per shape; a completion shows in estimates after at most this long. 0: every submit.
    ESTIMATE_CACHE_SECONDS: float = Field(10, ge=0, le=3600)

    # --- budgets and approval (issue 15: orchestrator/domain/budget.py, orchestrator/spending.py) ---
    # "tenant:T=500/month,channel:C0123=50/month,user:U0456=20/week" (USD): the base; budgets set at run
    # time (Slack /train budget set, REST PUT /budgets) are stored and override it per scope and key.
    BUDGETS: Annotated[tuple[Budget, ...], NoDecode] = ()
    # Seconds the stored budgets are kept in memory (orchestrator/spending.py): a submit reads them from
    # there; a change through this instance shows at once, through another instance after at most this long.
    BUDGET_CACHE_SECONDS: float = Field(5.0, ge=0, le=3600)
    # How often the dispatcher checks running jobs against their budgets (orchestrator/budget_stops.py): one
    # bounded read per tenant with running jobs. A used-up budget stops them at their next checkpoint.
    BUDGET_CHECK_SECONDS: float = Field(30.0, gt=0, le=3600)

    @field_validator("BUDGETS", mode="before")
    @classmethod
    def _budgets(cls, value: object) -> object:
        return parse_budgets_setting(value)


class Settings(DerivedSettings, CostSettings):
    """All configuration, by the environment variable names the seed uses."""

    # hide_input_in_errors: a refused value is never echoed (LAXAI_API_TOKENS holds secrets).
    model_config = SettingsConfigDict(env_file_encoding="utf-8", extra="ignore", case_sensitive=True,
                                      hide_input_in_errors=True)

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
    OOM_RETRIES: int = Field(2, ge=0, le=10)  # out of memory: retried with half the batch this often (domain/oom.py)
    STALL_SECONDS: float = Field(600, gt=0, le=86400)  # no batch this long: stopped, resumed (worker/watchdog.py)
    TASK_TIMEOUT: float = Field(0, ge=0)  # the platform's cap per execution (0: none); Cloud Run GPU: 3600
    TASK_TIMEOUT_MARGIN: float = Field(120, ge=0)  # checkpoint and exit this long before TASK_TIMEOUT
    CANCEL_GRACE_SECONDS: float = Field(60, gt=0)  # then the launcher stops the execution hard
    CANCEL_POLL_SECONDS: float = Field(1.0, gt=0)  # how often a worker looks for a cancel request (a read)
    # --- stopping an execution (13R: orchestrator/stopping.py) ---
    # A stop call (Cloud Run CancelExecution) that fails is tried again after this many seconds, doubling
    # after each failure up to STOP_RETRY_MAX_SECONDS, until it is accepted.
    STOP_RETRY_SECONDS: float = Field(5.0, gt=0, le=3600)
    STOP_RETRY_MAX_SECONDS: float = Field(300.0, gt=0, le=86400)
    # At most one progress write per this many seconds within an epoch (epoch ends go at once). 3 s: a
    # Slack card changes at most every SLACK_CARD_MIN_INTERVAL (3 s), so more often is never seen there.
    PROGRESS_INTERVAL: float = Field(3.0, ge=0)
    DISPATCH_INTERVAL: float = Field(1.0, gt=0)
    # The write budget's gap (orchestrator/stores/write_budget.py); unset: see ``write_gap``.
    STORE_WRITE_GAP: float | None = Field(None, ge=0, le=10)
    # --- store timeout (14E: orchestrator/backends/sqlite_db.py) ---
    # Seconds a SQLite writer waits for the write lock, each from its own start; then the write fails
    # (REST: 503, nothing stored). LAXAI_SQLITE_BUSY_TIMEOUT is its older name.
    STORE_TIMEOUT: float = Field(10, gt=0, le=600,
                                 validation_alias=AliasChoices("STORE_TIMEOUT", "LAXAI_SQLITE_BUSY_TIMEOUT"))

    # --- REST API ---
    PORT: int = 8080
    # "token1:tenant-a,token2:tenant-b", parsed at start (orchestrator/config_lists.py); unset: a local token
    LAXAI_API_TOKENS: Annotated[tuple[ApiToken, ...], NoDecode] | None = None
    LAXAI_URL: str | None = None  # where the CLI finds the service
    MAX_BODY_BYTES: int = 64 * 1024

    # --- worker ---
    WANDB_PROJECT: str = "laxai-train"
    WANDB_MODE: str = "offline"
    YOLO_DEVICE: str | None = None  # force "cpu" or "0"; default: the GPU when present
    # Local workers fork from a process that has imported torch and Ultralytics once (worker/warm.py):
    # each starts training ~5 CPU-s sooner. 0: every worker is a fresh `python -m worker`.
    WARM_WORKERS: bool = True

    # --- worker limits and disk (orchestrator/launchers/memlimit.py, orchestrator/retention.py) ---
    # Memory a local worker may use, enforced by the kernel (a memory cgroup); unset: MEMORY_LIMIT;
    # "none": not enforced. WORKER_CGROUP_ROOT: a writable cgroup directory to create them under.
    WORKER_MEMORY_LIMIT: str | None = None
    WORKER_CGROUP_ROOT: Path | None = None
    LAXAI_CACHE_BYTES: int = Field(20 * 2**30, ge=0)  # synthetic datasets kept; "20Gi" works too
    LAXAI_RETENTION_DAYS: float = Field(30, ge=0)  # finished jobs' runs, logs, artifacts; 0: keep forever

    # --- GPUs and staying up (issue 10: no silent CPU, honest GPU types, launch and loop failures) ---
    # 1: a worker that sees no CUDA device fails its attempt (gpu_unavailable) instead of training on
    # the CPU. Unset: on when CLOUD_RUN_JOB is set (Cloud Run sets it in every job execution).
    REQUIRE_GPU: bool | None = None
    CLOUD_RUN_JOB: str | None = None  # set by Cloud Run in job executions; never set it yourself
    # gpu_type values a job may ask for, comma-separated. Unset: the Cloud Run launcher offers its
    # job's GPU_TYPE only (a job has one GPU type); local workers GPU_TYPE and cpu.
    GPU_TYPES_AVAILABLE: CommaList | None = None
    MAX_LAUNCH_ATTEMPTS: int = Field(3, ge=1)  # launches failing in a row before a job fails (launch_failed)
    # Background loops (dispatcher, change feed, notifier): consecutive failed passes before /healthz says 503.
    LOOP_FAILURE_LIMIT: int = Field(5, ge=1)

    # --- gcp backend ---
    GOOGLE_CLOUD_PROJECT: str = "laxai-local"
    FIRESTORE_COLLECTION: str = "training_jobs"
    TRAINING_TOPIC: str = "training-jobs"
    TRAINING_SUBSCRIPTION: str = "training-jobs-sub"
    DEAD_LETTER_TOPIC: str = "training-jobs-dead-letter"
    WORKER_JOB_NAME: str = "laxai-training-worker"
    ARTIFACT_BUCKET: str | None = None
    LAXAI_LAUNCHER: Literal["auto", "local", "cloudrun"] = "auto"
    PUSH_AUDIENCE: CommaList | None = None  # OIDC audience(s), comma-separated, of pushes to /pubsub/push
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
    EVENTARC_AUDIENCE: CommaList | None = None  # audiences accepted on /eventarc/firestore
    TICK_AUDIENCE: CommaList | None = None  # of Cloud Scheduler's calls to /tasks/tick
    OIDC_CERTS_URL: str = "https://www.googleapis.com/oauth2/v1/certs"  # Google's ID-token signing certs

    # --- what a tenant's job may read (14A: orchestrator/trust/) ---
    # Local roots beyond $LAXAI_HOME/data/<tenant>/, "tenant-a=/srv/a,*=/srv/public" ("*": every tenant);
    # gs:// prefixes in the same format (unset: gs://ARTIFACT_BUCKET/datasets/<tenant>/); the cap on one
    # gs:// dataset's download ("8Gi" works too).
    LAXAI_DATA_ROOTS: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(default_factory=dict)
    DATASET_BUCKETS: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(default_factory=dict)
    MAX_DATASET_BYTES: int = Field(8 * 2**30, ge=1)

    @field_validator("LAXAI_DATA_ROOTS", mode="before")
    @classmethod
    def _data_roots(cls, value: object) -> object:
        from orchestrator.trust.roots import parse_tenant_map

        mapping = parse_tenant_map(value, "LAXAI_DATA_ROOTS") if isinstance(value, str) else value
        relative = [root for roots in dict(mapping or {}).values() for root in roots if not Path(root).is_absolute()]
        if relative:
            raise ValueError(f"LAXAI_DATA_ROOTS roots must be absolute paths (got {relative[0]!r})")
        return mapping

    @field_validator("DATASET_BUCKETS", mode="before")
    @classmethod
    def _dataset_buckets(cls, value: object) -> object:
        from orchestrator.trust.roots import parse_tenant_map

        mapping = parse_tenant_map(value, "DATASET_BUCKETS") if isinstance(value, str) else value
        bad = [p for prefixes in dict(mapping or {}).values() for p in prefixes
               if not p.startswith("gs://") or len(p.rstrip("/")) <= len("gs://")]
        if bad:
            raise ValueError(f"DATASET_BUCKETS prefixes must look like gs://bucket/path/ (got {bad[0]!r})")
        return mapping

    @field_validator("MAX_DATASET_BYTES", mode="before")
    @classmethod
    def _dataset_bytes(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().isdigit():
            try:
                return int(parse_memory(value) * 2**30)
            except ValueError:
                raise ValueError(f"MAX_DATASET_BYTES must be bytes or a quantity like 8Gi (got {value!r})") from None
        return value

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

    @field_validator("WORKER_MEMORY_LIMIT")
    @classmethod
    def _worker_memory(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() != "none" and parse_memory(value) <= 0:
            raise ValueError("WORKER_MEMORY_LIMIT must be a positive quantity like 16Gi, or none")
        return value

    @field_validator("LAXAI_CACHE_BYTES", mode="before")
    @classmethod
    def _cache_bytes(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().isdigit():
            try:
                return int(parse_memory(value) * 2**30)
            except ValueError:
                raise ValueError(f"LAXAI_CACHE_BYTES must be bytes or a quantity like 20Gi (got {value!r})") from None
        return value

    # --- settings that open a hole refuse to start (14E) ---
    @field_validator("LAXAI_PUSH_AUTH")
    @classmethod
    def _push_auth_off_only_on_emulators(cls, value: str, info: ValidationInfo) -> str:
        # A field validator (LAXAI_BACKEND is declared above) so the error shows only this value.
        # Google's clients read the emulator hosts from the environment: so does this check.
        emulated = all(os.environ.get(name) for name in EMULATOR_HOSTS)
        if info.data.get("LAXAI_BACKEND") == "gcp" and value == "none" and not emulated:
            raise ValueError(
                "LAXAI_PUSH_AUTH=none turns off the token checks of /pubsub/push, /eventarc/firestore and "
                "/tasks/tick: on the gcp backend it is allowed only with the emulators "
                f"({' and '.join(EMULATOR_HOSTS)} set); unset LAXAI_PUSH_AUTH and set PUSH_AUDIENCE, "
                "EVENTARC_AUDIENCE, TICK_AUDIENCE and PUSH_SERVICE_ACCOUNT")
        return value

    @field_validator("GPU_TYPES_AVAILABLE", mode="before")
    @classmethod
    def _available_gpus(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(item.lower() for item in split_commas(value))
        if isinstance(value, (list, tuple)):
            unknown = [item for item in value if item not in GPU_TYPES]
            if unknown or not value:
                raise ValueError(f"GPU_TYPES_AVAILABLE must list some of {', '.join(GPU_TYPES)} "
                                 f"(got {', '.join(map(str, unknown)) or 'nothing'})")
        return value

    # --- list settings, parsed once at start (11A: orchestrator/config_lists.py) ---
    @field_validator("LAXAI_API_TOKENS", mode="before")
    @classmethod
    def _api_tokens(cls, value: object) -> object:
        return parse_api_tokens(value)

    @field_validator("STOP_RETRY_MAX_SECONDS")
    @classmethod
    def _stop_retry_ceiling(cls, value: float, info: ValidationInfo) -> float:
        # 13R: the backoff of a failing stop call doubles from STOP_RETRY_SECONDS up to this ceiling.
        first = info.data.get("STOP_RETRY_SECONDS")
        if first is not None and value < first:
            raise ValueError(f"must be at least STOP_RETRY_SECONDS ({first:g}): the longest wait between "
                             "two stop calls of one execution")
        return value

    @field_validator("PUSH_AUDIENCE", "EVENTARC_AUDIENCE", "TICK_AUDIENCE", mode="before")
    @classmethod
    def _audiences(cls, value: object, info: ValidationInfo) -> object:
        return parse_audiences(value, info.field_name or "audience")


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

"""JobSpec: what a user asks to train, validated strictly.

Accepts the seed's request body exactly (``tenant_id``, ``training_params``,
``model_params``, ``custom_name``, ``wandb_tags``) plus ``dataset``, ``gpu_type``,
``priority`` and ``max_cost_usd``. Unknown fields are refused by name. Pure domain code.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from orchestrator.domain.cost import GPU_TYPES

# Model configs Ultralytics can build from YAML without downloading weights.
ARCHITECTURES = tuple(
    f"{family}{size}" for family in ("yolov8", "yolo11") for size in ("n", "s", "m", "l", "x")
)
# Short names people type; "yolo" means the smallest current model.
ARCHITECTURE_ALIASES = {
    "yolo": "yolo11n",
    "yolo11": "yolo11n",
    "yolov11": "yolo11n",
    "yolov8": "yolov8n",
    "v8": "yolov8n",
    "v11": "yolo11n",
}
DEFAULT_ARCHITECTURE = ARCHITECTURE_ALIASES["yolo"]

MODEL_TYPES = ("detection",)
SYNTHETIC_PATTERN = re.compile(r"synthetic(?::(\d+))?")
SYNTHETIC_IMAGES = (8, 10_000)  # allowed range of N in "synthetic:N"
# Generated pixels per synthetic dataset (N x input_size²): bounds its disk (~20 GB at 10000 x 2048²).
SYNTHETIC_PIXEL_BUDGET = 2_500_000_000

LIMITS = {
    "epochs": (1, 1000),
    "batch_size": (1, 1024),
    "input_size": (32, 2048),
    "priority": (0, 9),
    "custom_name": 100,
    "wandb_tags": 20,
    "tag": 64,
    "dataset": 1024,
    "tenant_id": 128,
    "max_cost_usd": 100_000,  # a per-job cost cap above this is a typo, not a cap
}


class StrictModel(BaseModel):
    """Refuses unknown fields and silently coerced garbage."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TrainingParams(StrictModel):
    """How long and how hard to train."""

    epochs: int = Field(10, ge=LIMITS["epochs"][0], le=LIMITS["epochs"][1], strict=True)
    batch_size: int = Field(16, ge=LIMITS["batch_size"][0], le=LIMITS["batch_size"][1], strict=True)
    learning_rate: float = Field(0.001, gt=0, le=1, allow_inf_nan=False)
    model_type: Literal["detection"] = "detection"


class ModelParams(StrictModel):
    """Which network to train and at what resolution."""

    architecture: str = DEFAULT_ARCHITECTURE
    input_size: int = Field(640, ge=LIMITS["input_size"][0], le=LIMITS["input_size"][1], strict=True)
    # Optional starting checkpoint (a .pt path); otherwise built from the YAML.
    weights: str | None = Field(None, max_length=1024)

    @field_validator("architecture", mode="before")
    @classmethod
    def _known_architecture(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        name = value.strip().lower()
        name = ARCHITECTURE_ALIASES.get(name, name)
        if name not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {value!r}; allowed: {', '.join(ARCHITECTURES)}"
                f" (aliases: {', '.join(f'{k}={v}' for k, v in ARCHITECTURE_ALIASES.items())})"
            )
        return name

    @field_validator("input_size")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"must be a multiple of 32 between 32 and 2048 (got {value})")
        return value


Tag = Annotated[str, Field(min_length=1, max_length=LIMITS["tag"], pattern=r"^[^,\s][^,]*$")]


class JobSpec(StrictModel):
    """A complete, validated training request."""

    tenant_id: str = Field(
        min_length=1, max_length=LIMITS["tenant_id"], pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$"
    )
    training_params: TrainingParams = TrainingParams()
    model_params: ModelParams = ModelParams()
    custom_name: str | None = Field(None, min_length=1, max_length=LIMITS["custom_name"])
    wandb_tags: list[Tag] = Field(default_factory=list, max_length=LIMITS["wandb_tags"])
    # "synthetic", "synthetic:N", a path to a data.yaml, a dataset directory, or gs://...
    dataset: str = Field("synthetic", min_length=1, max_length=LIMITS["dataset"])
    # None means the deployment's configured GPU_TYPE.
    gpu_type: str | None = None
    # Higher runs first among queued jobs; ties go to the oldest.
    priority: int = Field(0, ge=LIMITS["priority"][0], le=LIMITS["priority"][1], strict=True)
    # Per-job cost cap in USD: the worker stops the job at the first checkpoint after its actual cost
    # reaches it (orchestrator/domain/cost_cap.py). None: no cap.
    max_cost_usd: float | None = Field(None, gt=0, le=LIMITS["max_cost_usd"], allow_inf_nan=False)

    @field_validator("custom_name")
    @classmethod
    def _printable_name(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable text without control characters")
        return value

    @field_validator("gpu_type", mode="before")
    @classmethod
    def _known_gpu(cls, value: object) -> object:
        if value is None or not isinstance(value, str):
            return value
        name = value.strip().lower()
        if name not in GPU_TYPES:
            raise ValueError(f"unknown gpu_type {value!r}; allowed: {', '.join(GPU_TYPES)}")
        return name

    @field_validator("dataset")
    @classmethod
    def _dataset_form(cls, value: str) -> str:
        match = SYNTHETIC_PATTERN.fullmatch(value)
        if match and match.group(1):
            low, high = SYNTHETIC_IMAGES
            if not low <= int(match.group(1)) <= high:
                raise ValueError(f"synthetic:N needs N between {low} and {high}")
        if "\x00" in value or not value.isprintable():
            raise ValueError("must be printable text")
        return value

    @field_validator("dataset")
    @classmethod
    def _pixel_budget(cls, value: str, info: ValidationInfo) -> str:
        params = info.data.get("model_params")
        match = SYNTHETIC_PATTERN.fullmatch(value)
        if params is None or not match or not match.group(1):
            return value
        count, size = int(match.group(1)), params.input_size
        if count * size * size > SYNTHETIC_PIXEL_BUDGET:
            most = SYNTHETIC_PIXEL_BUDGET // (size * size)
            raise ValueError(f"synthetic:{count} at input_size {size} is over the budget of "
                             f"{SYNTHETIC_PIXEL_BUDGET:,} generated pixels (N x input_size²); "
                             f"at input_size {size} use synthetic:N with N at most {most}")
        return value

    @property
    def display_name(self) -> str:
        """What people call this run."""
        return self.custom_name or f"{self.model_params.architecture}-{self.training_params.epochs}ep"

    def synthetic_images(self) -> int | None:
        """Number of generated training images, or None for a real dataset."""
        match = SYNTHETIC_PATTERN.fullmatch(self.dataset)
        if not match:
            return None
        return int(match.group(1)) if match.group(1) else 32


def spec_field_names() -> dict[str, tuple[str, ...]]:
    """Allowed field names per level, for did-you-mean messages."""
    return {
        "": tuple(JobSpec.model_fields),
        "training_params": tuple(TrainingParams.model_fields),
        "model_params": tuple(ModelParams.model_fields),
    }

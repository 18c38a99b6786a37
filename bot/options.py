"""The /train options: their Slack names, aliases, limits, and how they become a JobSpec.

Shared by the slash-command parser and the modal, so both accept the same names,
convert values the same way and word errors the same way. JobSpec does the real
validation (orchestrator.domain); this module only maps Slack's flat
``key=value`` names onto the spec's nested fields and maps errors back to the
name the user typed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from orchestrator.domain.cost import GPU_TYPES
from orchestrator.domain.errors import FieldError, SpecError, field_errors, suggest
from orchestrator.domain.spec import (
    ARCHITECTURES,
    DEFAULT_ARCHITECTURE,
    LIMITS,
    SYNTHETIC_IMAGES,
    JobSpec,
    ModelParams,
    TrainingParams,
)


@dataclass(frozen=True)
class Option:
    """One /train option."""

    key: str  # what users type and the modal's block_id
    path: tuple[str, ...]  # where it lives in a JobSpec
    kind: str  # int | float | str | list
    label: str  # modal label
    allowed: str  # what is allowed, in words, appended to errors
    aliases: tuple[str, ...] = ()


_EPOCHS, _BATCH, _SIZE, _PRIO = LIMITS["epochs"], LIMITS["batch_size"], LIMITS["input_size"], LIMITS["priority"]

OPTIONS: tuple[Option, ...] = (
    Option("epochs", ("training_params", "epochs"), "int", "Epochs",
           f"a whole number from {_EPOCHS[0]} to {_EPOCHS[1]}"),
    Option("arch", ("model_params", "architecture"), "str", "Architecture",
           f"one of {', '.join(ARCHITECTURES)} or yolo, yolov8, yolo11", ("architecture", "model")),
    Option("batch", ("training_params", "batch_size"), "int", "Batch size",
           f"a whole number from {_BATCH[0]} to {_BATCH[1]}", ("batch_size",)),
    Option("lr", ("training_params", "learning_rate"), "float", "Learning rate",
           "a number above 0 and at most 1, e.g. 0.001", ("learning_rate",)),
    Option("imgsz", ("model_params", "input_size"), "int", "Image size (px)",
           f"a multiple of 32 from {_SIZE[0]} to {_SIZE[1]}", ("input_size", "img_size")),
    Option("dataset", ("dataset",), "str", "Dataset",
           f"synthetic, synthetic:N (N from {SYNTHETIC_IMAGES[0]} to {SYNTHETIC_IMAGES[1]}), "
           "a data.yaml path, a dataset directory or a gs:// URI", ("data",)),
    Option("gpu", ("gpu_type",), "str", "GPU", f"one of {', '.join(GPU_TYPES)}", ("gpu_type",)),
    Option("name", ("custom_name",), "str", "Run name",
           f"printable text, at most {LIMITS['custom_name']} characters", ("custom_name",)),
    Option("tags", ("wandb_tags",), "list", "W&B tags",
           f"a comma-separated list of at most {LIMITS['wandb_tags']} tags of at most {LIMITS['tag']} characters",
           ("wandb_tags", "tag")),
    Option("priority", ("priority",), "int", "Priority",
           f"a whole number from {_PRIO[0]} (default) to {_PRIO[1]}; higher runs first"),
    Option("max_cost", ("max_cost_usd",), "float", "Cost cap (USD)",
           f"a number of USD above 0 and at most {LIMITS['max_cost_usd']:,}, e.g. 5; the job stops at the first "
           "checkpoint after it has cost that much", ("max_cost_usd", "cost_cap")),
)

BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}
BY_NAME: dict[str, Option] = {name: o for o in OPTIONS for name in (o.key, *o.aliases)}
BY_PATH: dict[tuple[str, ...], Option] = {o.path: o for o in OPTIONS}
KEYS: tuple[str, ...] = tuple(BY_KEY)
ALL_NAMES: tuple[str, ...] = tuple(BY_NAME)


def defaults(gpu_type: str) -> dict[str, str]:
    """Each option's default, as text (the modal's initial values)."""
    tp, mp = TrainingParams(), ModelParams()
    return {
        "epochs": str(tp.epochs),
        "arch": DEFAULT_ARCHITECTURE,
        "batch": str(tp.batch_size),
        "lr": f"{tp.learning_rate:g}",
        "imgsz": str(mp.input_size),
        "dataset": JobSpec.model_fields["dataset"].default,
        "gpu": gpu_type,
        "name": "",
        "tags": "",
        "priority": str(JobSpec.model_fields["priority"].default),
        "max_cost": "",  # no cap
    }


def lookup(name: str) -> Option | None:
    """The option for a typed name (case-insensitive, dashes as underscores)."""
    return BY_NAME.get(name.strip().lower().lstrip("-").replace("-", "_"))


def did_you_mean(name: str) -> str:
    """Error text for an unknown option name."""
    hint = suggest(name.lower(), list(ALL_NAMES))
    hint_key = BY_NAME[hint].key if hint else None
    text = f"unknown option `{name}`"
    if hint_key:
        text += f" (did you mean `{hint_key}`?)"
    return text + f"; options: {', '.join(KEYS)}"


class OptionErrors(ValueError):
    """Bad /train values, keyed by the name the user typed (or the modal block_id)."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))

    def by_field(self) -> dict[str, str]:
        """field -> all its messages joined (one entry per modal block)."""
        merged: dict[str, str] = {}
        for error in self.errors:
            merged[error.field] = f"{merged[error.field]}; {error.message}" if error.field in merged else error.message
        return merged


def _convert(option: Option, raw: str) -> Any:
    """Typed value for JobSpec; unparsable text goes through as is so JobSpec words the error."""
    text = raw.strip()
    if option.kind == "int":
        try:
            return int(text.replace("_", "")) if text.lstrip("+-").replace("_", "").isdigit() else text
        except ValueError:
            return text
    if option.kind == "float":
        try:
            return float(text)
        except ValueError:
            return text
    if option.kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text  # JobSpec normalises case and aliases ("YOLOv8n", "yolo") itself


def _with_allowed(option: Option, message: str) -> str:
    if "allowed" in message or "one of" in message:
        return message
    return f"{message}; allowed: {option.allowed}"


def typed_names(values: dict[str, tuple[str, str]]) -> dict[str, str]:
    """{spec path: name as typed}, to word later errors (e.g. the dataset check) the user's way."""
    return {".".join(BY_KEY[key].path): name for key, (name, _raw) in values.items()}


def build_spec(tenant_id: str, values: dict[str, tuple[str, str]], base: dict[str, Any] | None = None) -> JobSpec:
    """JobSpec from ``{option key: (name as typed, raw text)}``; blanks mean the default, or what
    ``base`` (a spec as JSON: Retry with changes keeps what the form does not change) says.

    Raises OptionErrors naming the typed names, with what each allows.
    """
    data: dict[str, Any] = {**copy.deepcopy(base or {}), "tenant_id": tenant_id}
    typed: dict[str, str] = {}
    for key, (name, raw) in values.items():
        option = BY_KEY[key]
        if raw is None or not str(raw).strip():
            continue
        typed[".".join(option.path)] = name
        target = data
        for part in option.path[:-1]:
            target = target.setdefault(part, {})
        target[option.path[-1]] = _convert(option, str(raw))
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise OptionErrors(remap(field_errors(exc), typed)) from None


def remap(errors: list[FieldError], typed: dict[str, str] | None = None) -> list[FieldError]:
    """Spec field paths ("training_params.epochs[0]") -> the Slack name the user typed."""
    typed = typed or {}
    result = []
    for error in errors:
        path = error.field
        option = None
        for candidate_path, candidate in BY_PATH.items():
            dotted = ".".join(candidate_path)
            if path == dotted or path.startswith(dotted + "."):
                option = candidate
                path = dotted
                break
        if option is None:
            # Not a user option (e.g. tenant_id from the team id): keep the path.
            name = "team" if path == "tenant_id" else path
            result.append(FieldError(name, error.message))
            continue
        name = typed.get(path, option.key)
        result.append(FieldError(name, _with_allowed(option, error.message)))
    return result


def spec_error_to_options(exc: SpecError, typed: dict[str, str] | None = None) -> OptionErrors:
    """A SpecError from JobService (e.g. check_dataset) in Slack names."""
    return OptionErrors(remap(exc.errors, typed))

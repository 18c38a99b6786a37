"""A retry's lineage: the versions of a run it descends from, and what each one changed.

A run retried (with or without changes) becomes a chain: v1 (the first job), v2 (its
retry), v3 (a retry of v2)... Each retry stores its ``Lineage`` when it is created,
from the original's (``lineage_after``): its own number, what it changed against the
job it retries (``spec_changes``: "epochs 3→10, lr 0.001→0.0005") and the versions
before it, the last ``MAX_EARLIER`` of them. It rides on the retry's creation write;
nothing is read or written later to show it. Pure domain code.

A retry whose changes touch training (epochs, lr, the architecture, the data...) starts
over: only a retry that changes none of that continues from a stopped job's checkpoint
(``keeps_checkpoint``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.domain.spec import JobSpec

MAX_EARLIER = 8  # versions kept before this one: a lineage stays small however long the chain
MAX_VALUE = 60  # characters of one value in a change (a dataset path can be 1024)
ARROW = "\u2192"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Change(_Record):
    """One field of the spec a retry changed, as text: ``epochs`` 3 -> 10."""

    field: str  # the short name people type: epochs, lr, batch... (bot/options.py's keys)
    before: str
    after: str


class Version(_Record):
    """An earlier version of the run."""

    task_id: str
    number: int  # 1 for the first job of the chain
    changes: list[Change] = Field(default_factory=list)  # against the version it retried


class Lineage(_Record):
    """Where a retry stands in its chain: its number, what it changed, the versions before it."""

    number: int
    changes: list[Change] = Field(default_factory=list)
    earlier: list[Version] = Field(default_factory=list)  # oldest first, at most MAX_EARLIER


def _text(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    elif isinstance(value, float):
        value = f"{value:g}"
    text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "\u2026"


# (name, how to read it from a spec), in the order changes are told.
FIELDS: tuple[tuple[str, Callable[[JobSpec], Any]], ...] = (
    ("epochs", lambda s: s.training_params.epochs),
    ("lr", lambda s: s.training_params.learning_rate),
    ("batch", lambda s: s.training_params.batch_size),
    ("imgsz", lambda s: s.model_params.input_size),
    ("arch", lambda s: s.model_params.architecture),
    ("weights", lambda s: s.model_params.weights),
    ("dataset", lambda s: s.dataset),
    ("gpu", lambda s: s.gpu_type or "default"),
    ("max_cost", lambda s: s.max_cost_usd),
    ("priority", lambda s: s.priority),
    ("name", lambda s: s.custom_name),
    ("tags", lambda s: list(s.wandb_tags)),
)
# Changes that leave what is trained alone: a retry with only these may go on from a checkpoint.
OUTSIDE_TRAINING = frozenset({"gpu", "max_cost", "priority", "name", "tags"})


def spec_changes(before: JobSpec, after: JobSpec) -> list[Change]:
    """What ``after`` changed against ``before``, field by field (empty: the same spec)."""
    changes = []
    for name, read in FIELDS:
        old, new = read(before), read(after)
        if old != new:
            changes.append(Change(field=name, before=_text(old), after=_text(new)))
    return changes


def describe(changes: list[Change]) -> str:
    """``epochs 3→10, lr 0.001→0.0005``, or ``same spec``."""
    if not changes:
        return "same spec"
    return ", ".join(f"{c.field} {c.before}{ARROW}{c.after}" for c in changes)


def keeps_checkpoint(changes: list[Change]) -> bool:
    """Whether a retry with these changes may continue from the original's checkpoint."""
    return all(c.field in OUTSIDE_TRAINING for c in changes)


def lineage_after(task_id: str, lineage: Lineage | None, before: JobSpec, after: JobSpec) -> Lineage:
    """The lineage of a retry of job ``task_id`` (whose own lineage is ``lineage``: None for a
    first job) from spec ``before`` to spec ``after``."""
    if lineage is None:
        earlier = [Version(task_id=task_id, number=1)]
    else:
        earlier = [*lineage.earlier, Version(task_id=task_id, number=lineage.number, changes=lineage.changes)]
    return Lineage(number=earlier[-1].number + 1, changes=spec_changes(before, after),
                   earlier=earlier[-MAX_EARLIER:])

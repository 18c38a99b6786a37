"""The accepted forms of ``model_params.weights``; anything else is refused by name.

- ``registry:NAME`` / ``registry:NAME:vN``: best.pt of the tenant's own registered model (newest
  version, or version N);
- ``task:ID`` / ``task:ID:last``: best.pt (last.pt) of one of the tenant's own finished jobs;
- an official Ultralytics pretrained name for a supported architecture (``yolo11n.pt``...);
- a ``.pt`` file inside the tenant's data roots (``orchestrator.trust.roots``).

Parsing is pure; the service resolves references against the store and registry (tenant
check) and the worker fetches the actual file and loads it with Ultralytics' safe loader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from orchestrator.domain.spec import ARCHITECTURES

FIELD = "model_params.weights"
BEST, LAST = "best.pt", "last.pt"
# Official pretrained checkpoints of the architectures we train (Ultralytics downloads them by name).
PRETRAINED = frozenset(f"{arch}.pt" for arch in ARCHITECTURES)
ALLOWED = ("registry:NAME[:vN] (your registered model), task:ID[:last] (your finished job's best.pt "
           f"or last.pt), an official pretrained name ({', '.join(sorted(PRETRAINED))}) or a .pt file "
           "inside your data roots")
_TASK_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_VERSION = re.compile(r"v([0-9]{1,9})")


class WeightsError(ValueError):
    """Not one of the accepted forms; the message says which are."""


@dataclass(frozen=True)
class RegistryWeights:
    name: str
    version: int | None  # None: the newest


@dataclass(frozen=True)
class TaskWeights:
    task_id: str
    file: str  # BEST or LAST


@dataclass(frozen=True)
class PretrainedWeights:
    name: str


@dataclass(frozen=True)
class FileWeights:
    path: str


Weights = RegistryWeights | TaskWeights | PretrainedWeights | FileWeights


def parse(text: str) -> Weights:
    """The reference ``text`` names; WeightsError when it is none of the accepted forms."""
    text = text.strip()
    if text.startswith("registry:"):
        return _registry(text.removeprefix("registry:"))
    if text.startswith("task:"):
        return _task(text.removeprefix("task:"))
    if text in PRETRAINED:
        return PretrainedWeights(text)
    if "://" in text or not text.endswith(".pt") or text.startswith(("http:", "https:")):
        raise WeightsError(f"must be {ALLOWED}")
    return FileWeights(text)


def _registry(rest: str) -> RegistryWeights:
    name, version = rest, None
    head, sep, tail = rest.rpartition(":")
    match = _VERSION.fullmatch(tail) if sep else None
    if match:
        name, version = head, int(match.group(1))
    if not name.strip():
        raise WeightsError(f"registry: needs a model name, as registry:NAME or registry:NAME:v3; allowed: {ALLOWED}")
    return RegistryWeights(name, version)


def _task(rest: str) -> TaskWeights:
    task_id, sep, which = rest.partition(":")
    if not _TASK_ID.fullmatch(task_id) or (sep and which not in ("best", "last")):
        raise WeightsError(f"task: needs a job id, as task:ID or task:ID:last; allowed: {ALLOWED}")
    return TaskWeights(task_id, LAST if which == "last" else BEST)


def describe(ref: Weights) -> str:
    """Words for messages (never a server path)."""
    if isinstance(ref, RegistryWeights):
        return f"registry model {ref.name!r}" + (f" v{ref.version}" if ref.version is not None else "")
    if isinstance(ref, TaskWeights):
        return f"{ref.file} of job {ref.task_id}"
    if isinstance(ref, PretrainedWeights):
        return f"pretrained {ref.name}"
    return "the weights file"

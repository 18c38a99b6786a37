"""The ModelRegistry contract and its entry record.

Implementations: ``registry.sqlite`` (local) and ``registry.firestore`` (gcp).
Versions count up per (tenant, name). Registering the same job twice returns
the first entry, so a retried worker never creates a second version.
"""

from __future__ import annotations

import abc
from datetime import datetime

from pydantic import Field

from orchestrator.domain.job import Record, utcnow


class ModelEntry(Record):
    """One registered model version."""

    tenant_id: str
    name: str
    version: int = 0  # assigned by the registry
    task_id: str
    architecture: str
    checkpoint: str  # uri of best.pt
    metrics: dict[str, float] = Field(default_factory=dict)
    wandb_artifact: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ModelRegistry(abc.ABC):
    @abc.abstractmethod
    def register(self, entry: ModelEntry) -> ModelEntry:
        """Store the entry with the next version of its name (or return the job's existing one)."""

    @abc.abstractmethod
    def list(self, tenant_id: str, name: str | None = None, limit: int = 100) -> list[ModelEntry]:
        """Newest first."""

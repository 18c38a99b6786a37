"""The ModelRegistry contract, its entry record and its aliases.

Implementations: ``registry.sqlite`` (local) and ``registry.firestore`` (gcp).
Versions count up per (tenant, name). Registering the same job twice returns
the first entry, so a retried worker never creates a second version.

Aliases (``production``, or any name orchestrator/domain/model_versions.py allows) point at one
version of a name per tenant. ``set_alias`` moves one in a single compare-and-set step (a SQLite
write transaction, a Firestore transaction over the alias and the name's version counter), checks
that the version exists, and records who moved it, when, and where it pointed before; setting it to
where it already points changes nothing. Tests: tests/contract/test_registry_contract.py.
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
    # Who trained it, from where (the job's origin): who may promote it, and who may see it in Slack.
    # None on entries registered before these were recorded: the job itself says.
    source: str | None = None  # api, cli or slack
    submitted_by: str | None = None  # the Slack user id (None for API and CLI jobs)
    channel: str | None = None  # the Slack channel


class ModelAlias(Record):
    """An alias of a model name, pointing at one version: who set it, when, and where it pointed before."""

    tenant_id: str
    name: str
    alias: str
    version: int
    set_by: str
    set_at: datetime
    previous: int | None = None


class UnknownVersion(LookupError):
    """No such version of that model name for this tenant; nothing changed."""


class ModelRegistry(abc.ABC):
    @abc.abstractmethod
    def register(self, entry: ModelEntry) -> ModelEntry:
        """Store the entry with the next version of its name (or return the job's existing one)."""

    @abc.abstractmethod
    def list(self, tenant_id: str, name: str | None = None, limit: int = 100) -> list[ModelEntry]:
        """Newest first."""

    @abc.abstractmethod
    def get(self, tenant_id: str, name: str, version: int) -> ModelEntry | None:
        """One version of a name, or None."""

    @abc.abstractmethod
    def set_alias(self, tenant_id: str, name: str, alias: str, version: int, by: str,
                  now: datetime | None = None) -> tuple[ModelAlias, bool]:
        """Point ``alias`` at ``version`` in one step: (the alias now, whether it changed).
        UnknownVersion when the name has no such version."""

    @abc.abstractmethod
    def aliases(self, tenant_id: str, name: str | None = None) -> list[ModelAlias]:
        """The tenant's aliases (of one name), by name then alias."""


def moved(old: ModelAlias | None, tenant_id: str, name: str, alias: str, version: int, by: str,
          now: datetime | None) -> ModelAlias | None:
    """The alias to store, or None when it already points at ``version``."""
    if old is not None and old.version == version:
        return None
    return ModelAlias(tenant_id=tenant_id, name=name, alias=alias, version=version, set_by=by,
                      set_at=now or utcnow(), previous=old.version if old else None)


def ordered(aliases: list[ModelAlias]) -> list[ModelAlias]:
    return sorted(aliases, key=lambda a: (a.name, a.alias))

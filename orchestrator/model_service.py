"""The model registry as the front ends offer it: versions with their aliases, and promoting one.

Every front end (REST ``/models``, ``laxai models``, Slack's Promote button and ``/train models``)
goes through ``ModelService``. Promoting points an alias (``production`` unless another valid one
is named) at one version of a tenant's model name: one compare-and-set in the registry, recorded
with who and when. It is for an admin or the version's submitter: the Slack user who started its
job, or, for a job submitted over REST or the CLI, the tenant's API tokens (a token has no person
behind it). When W&B is online the artifact of that version gets the alias too, on a thread of its
own: W&B never delays or fails a promotion, a failure there is logged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.domain.model_versions import PRODUCTION, check_alias
from orchestrator.registry.base import ModelAlias, ModelEntry, UnknownVersion
from orchestrator.service import JobService, NotAllowed

log = logging.getLogger(__name__)

LIST_LIMIT = 100


class UnknownModel(LookupError):
    """No such model version for this tenant (another tenant's is reported the same way)."""


@dataclass(frozen=True)
class Listing:
    """Versions newest first, and the aliases of their names."""

    entries: list[ModelEntry]
    aliases: list[ModelAlias]

    def aliases_of(self, entry: ModelEntry) -> list[str]:
        return [a.alias for a in self.aliases if a.name == entry.name and a.version == entry.version]


@dataclass(frozen=True)
class Promotion:
    """A promotion's result: the alias as it now stands, whether this call moved it, and the version."""

    alias: ModelAlias
    changed: bool
    entry: ModelEntry


def api_identity(tenant: str) -> str:
    """Who a REST or CLI caller is: its tenant's tokens."""
    return f"api:{tenant}"


class ModelService:
    """The registry's versions and aliases for one backend, behind the front ends' permission rule."""

    def __init__(self, jobs: JobService):
        self.jobs = jobs
        self.registry = jobs.backend.registry
        self.settings: Settings = jobs.settings

    def listing(self, tenant: str, name: str | None = None, limit: int = LIST_LIMIT) -> Listing:
        return Listing(self.registry.list(tenant, name, limit=limit), self.registry.aliases(tenant, name))

    def entry(self, tenant: str, name: str, version: int) -> ModelEntry:
        found = self.registry.get(tenant, name, version)
        if found is None:
            raise UnknownModel(f"no version v{version} of model {name!r}")
        return found

    def submitter(self, tenant: str, entry: ModelEntry) -> str | None:
        """Who trained the version: a Slack user id, ``api:<tenant>``, or None when unknown."""
        source, user = entry.source, entry.submitted_by
        if source is None:  # registered before the registry recorded it: the job says
            job = self.jobs.store.get(entry.task_id)
            if job is None or job.tenant_id != tenant:
                return None
            source, user = job.origin.source, job.origin.user
        return user if source == "slack" else api_identity(tenant)

    def may_promote(self, tenant: str, entry: ModelEntry, by: str, admin: bool) -> bool:
        return admin or (bool(by) and by == self.submitter(tenant, entry))

    def promote(self, tenant: str, name: str, version: int, by: str, admin: bool,
                alias: str = PRODUCTION) -> Promotion:
        """Point ``alias`` at ``version``. UnknownModel (nothing to promote), NotAllowed (neither an
        admin nor its submitter), SpecError (a bad alias name); in each case nothing changed."""
        check_alias(alias)
        entry = self.entry(tenant, name, version)
        if not self.may_promote(tenant, entry, by, admin):
            raise NotAllowed(f"only an admin or the submitter of {name} v{version} may promote it")
        try:
            moved, changed = self.registry.set_alias(tenant, name, alias, version, by)
        except UnknownVersion as exc:
            raise UnknownModel(str(exc)) from None
        if changed:
            log.info("%s set %s of %s/%s to v%d (was %s)", by, alias, tenant, name, version, moved.previous)
            self.tag_wandb(entry, alias)
        return Promotion(moved, changed, entry)

    def tag_wandb(self, entry: ModelEntry, alias: str) -> threading.Thread | None:
        """Give the version's W&B artifact the alias, in the background, when W&B is online."""
        if self.settings.WANDB_MODE != "online" or not entry.wandb_artifact:
            return None
        thread = threading.Thread(target=wandb_alias, args=(self.settings.WANDB_PROJECT, entry.wandb_artifact, alias),
                                  name="wandb-alias", daemon=True)
        thread.start()
        return thread


def wandb_alias(project: str, reference: str, alias: str) -> bool:
    """Add ``alias`` to the artifact ``reference`` (W&B moves it off the collection's other versions);
    False, logged, on any failure."""
    try:
        import wandb

        path = reference if reference.count("/") >= 1 else f"{project}/{reference}"
        artifact = wandb.Api(timeout=20).artifact(path, type="model")
        if alias not in artifact.aliases:
            artifact.aliases.append(alias)
            artifact.save()
        return True
    except Exception as exc:  # noqa: BLE001 - W&B is a side channel; the registry already moved
        log.warning("W&B alias %s on %s failed: %s: %s", alias, reference, type(exc).__name__, exc)
        return False

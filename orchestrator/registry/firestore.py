"""Firestore ModelRegistry: registered model versions in the ``model_registry`` collection.

One document per entry, keyed by task_id, so registering the same job twice finds
the first entry. Versions count up per (tenant, name) through a counter document
in ``<collection>_counters``, read and bumped in the same transaction that creates
the entry, so concurrent registrations never share a version.

Aliases live in ``<collection>_aliases``, one document per (tenant, name, alias). A move reads the
alias and the name's counter document (versions are 1..latest, none is ever removed) and writes the
alias in one transaction. Queries on it are equality-only (tenant, name), served by the automatic
single-field indexes; ``get`` of one version is the same (tenant, name, version).

Production indexes (the emulator needs none): ``firestore.indexes.json`` (see
orchestrator/stores/firestore.py), which also exempts the ``entry`` map from indexing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from orchestrator.registry.base import ModelAlias, ModelEntry, ModelRegistry, UnknownVersion, moved, ordered
from orchestrator.stores.base import StoreError
from orchestrator.stores.firestore import Stripes, doc_id, run_transaction


class FirestoreModelRegistry(ModelRegistry):
    def __init__(self, client: firestore.Client, collection: str = "model_registry"):
        self.client = client
        self._entries = client.collection(collection)
        self._counters = client.collection(f"{collection}_counters")
        self._aliases = client.collection(f"{collection}_aliases")
        self._stripes = Stripes()

    def register(self, entry: ModelEntry) -> ModelEntry:
        ref = self._entries.document(doc_id(entry.task_id))
        counter = self._counters.document(doc_id(entry.tenant_id, entry.name, "model"))

        def body(tx: Any) -> ModelEntry:
            existing = ref.get(transaction=tx)
            if existing.exists:
                return ModelEntry.model_validate(existing.get("entry"))
            latest = counter.get(transaction=tx)
            version = (latest.get("latest") if latest.exists else 0) + 1
            stored = entry.model_copy(update={"version": version})
            tx.set(counter, {"tenant_id": entry.tenant_id, "name": entry.name, "latest": version})
            tx.create(ref, {
                "tenant_id": stored.tenant_id,
                "name": stored.name,
                "version": stored.version,
                "task_id": stored.task_id,
                "created_at": stored.created_at,
                "entry": stored.model_dump(mode="json"),
            })
            return stored

        with self._stripes(entry.tenant_id, entry.name):
            return run_transaction(self.client, body, f"register {entry.name}")

    def list(self, tenant_id: str, name: str | None = None, limit: int = 100) -> list[ModelEntry]:
        query: Any = self._entries.where(filter=FieldFilter("tenant_id", "==", tenant_id))
        if name:
            query = query.where(filter=FieldFilter("name", "==", name))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(int(limit))
        try:
            return [ModelEntry.model_validate(s.get("entry")) for s in query.stream()]
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(str(exc)) from exc

    def get(self, tenant_id: str, name: str, version: int) -> ModelEntry | None:
        query = (self._entries.where(filter=FieldFilter("tenant_id", "==", tenant_id))
                 .where(filter=FieldFilter("name", "==", name))
                 .where(filter=FieldFilter("version", "==", int(version))).limit(1))
        try:
            found = [ModelEntry.model_validate(s.get("entry")) for s in query.stream()]
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(str(exc)) from exc
        return found[0] if found else None

    def set_alias(self, tenant_id: str, name: str, alias: str, version: int, by: str,
                  now: datetime | None = None) -> tuple[ModelAlias, bool]:
        ref = self._aliases.document(doc_id(tenant_id, name, alias))
        counter = self._counters.document(doc_id(tenant_id, name, "model"))

        def body(tx: Any) -> tuple[ModelAlias, bool]:
            latest = counter.get(transaction=tx)
            if not latest.exists or not 1 <= int(version) <= int(latest.get("latest")):
                raise UnknownVersion(f"no version {version} of model {name!r}")
            snapshot = ref.get(transaction=tx)
            old = ModelAlias.model_validate(snapshot.get("alias_record")) if snapshot.exists else None
            new = moved(old, tenant_id, name, alias, int(version), by, now)
            if new is None:
                return old, False  # type: ignore[return-value] - moved() is None only when old is set
            tx.set(ref, {"tenant_id": tenant_id, "name": name, "alias": alias,
                         "alias_record": new.model_dump(mode="json")})
            return new, True

        with self._stripes(tenant_id, name, alias):
            return run_transaction(self.client, body, f"alias {name}:{alias}")

    def aliases(self, tenant_id: str, name: str | None = None) -> list[ModelAlias]:
        query: Any = self._aliases.where(filter=FieldFilter("tenant_id", "==", tenant_id))
        if name:
            query = query.where(filter=FieldFilter("name", "==", name))
        try:
            return ordered([ModelAlias.model_validate(s.get("alias_record")) for s in query.stream()])
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(str(exc)) from exc

"""Firestore ModelRegistry: registered model versions in the ``model_registry`` collection.

One document per entry, keyed by task_id, so registering the same job twice finds
the first entry. Versions count up per (tenant, name) through a counter document
in ``<collection>_counters``, read and bumped in the same transaction that creates
the entry, so concurrent registrations never share a version.

Production indexes (the emulator needs none): ``firestore.indexes.json`` (see
orchestrator/stores/firestore.py), which also exempts the ``entry`` map from indexing.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from orchestrator.registry.base import ModelEntry, ModelRegistry
from orchestrator.stores.base import StoreError
from orchestrator.stores.firestore import Stripes, doc_id, run_transaction


class FirestoreModelRegistry(ModelRegistry):
    def __init__(self, client: firestore.Client, collection: str = "model_registry"):
        self.client = client
        self._entries = client.collection(collection)
        self._counters = client.collection(f"{collection}_counters")
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

"""Firestore budgets: ``budgets`` (one document per scope and key) and ``budget_audit`` (one per change).

A change and its audit document are written in one transaction. Queries: the whole (small)
``budgets`` collection, and ``budget_audit`` ordered by ``seq`` descending — a single field order,
served by Firestore's automatic single-field index, so ``firestore.indexes.json`` needs nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from orchestrator.budgets.base import BudgetChange, BudgetStore, change_for, ordered
from orchestrator.domain.budget import Budget
from orchestrator.stores.base import StoreError
from orchestrator.stores.firestore import Stripes, doc_id, run_transaction

BUDGETS, AUDIT = "budgets", "budget_audit"


class FirestoreBudgets(BudgetStore):
    """Compare-and-set through Firestore transactions."""

    def __init__(self, client: firestore.Client):
        self.client = client
        self._budgets = client.collection(BUDGETS)
        self._audit = client.collection(AUDIT)
        self._stripes = Stripes()

    def _change(self, scope: str, key: str, new: Budget | None, by: str,
                now: datetime | None) -> BudgetChange | None:
        ref = self._budgets.document(doc_id(f"{scope}:{key}"))

        def body(tx: Any) -> BudgetChange | None:
            snapshot = ref.get(transaction=tx)
            old = Budget.model_validate_json(snapshot.get("budget")) if snapshot.exists else None
            change = change_for(old, new, scope, key, by, now)
            if change is None:
                return None
            if new is None:
                tx.delete(ref)
            else:
                tx.set(ref, {"scope": scope, "key": key, "budget": new.model_dump_json()})
            # seq orders the trail by the change's time; the suffix only keeps two equal times apart
            seq = f"{change.at.timestamp():020.6f}-{uuid.uuid4().hex}"
            tx.set(self._audit.document(), {"seq": seq, "change": json.dumps(change.to_dict())})
            return change

        with self._stripes(scope, key):  # this process's writers queue here rather than abort each other
            return run_transaction(self.client, body, f"budget {scope}:{key}")

    def list(self) -> list[Budget]:
        try:
            return ordered([Budget.model_validate_json(s.get("budget")) for s in self._budgets.stream()])
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(f"reading the budgets failed: {exc}") from exc

    def audit(self, limit: int = 50) -> list[BudgetChange]:
        query = self._audit.order_by("seq", direction=firestore.Query.DESCENDING).limit(int(limit))
        try:
            return [BudgetChange.from_dict(json.loads(s.get("change"))) for s in query.stream()]
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(f"reading the budget audit failed: {exc}") from exc

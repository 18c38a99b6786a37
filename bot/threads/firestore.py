"""Firestore ``slack_threads``: one document per job, id = the job's document id.

Read and written by document id only, in a transaction (compare-and-set): it issues
no query, so it needs no index in ``firestore.indexes.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from orchestrator.stores.base import StoreError
from orchestrator.stores.firestore import Stripes, doc_id, run_transaction

from bot.threads.base import SlackThread, SlackThreads, changed

COLLECTION = "slack_threads"


class FirestoreSlackThreads(SlackThreads):
    """Compare-and-set through Firestore transactions (a concurrent write makes ``fn`` run again)."""

    def __init__(self, client: firestore.Client, collection: str = COLLECTION):
        self.client = client
        self._threads = client.collection(collection)
        self._stripes = Stripes()

    def get(self, task_id: str) -> SlackThread | None:
        try:
            snapshot = self._threads.document(doc_id(task_id)).get()
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise StoreError(f"reading the Slack thread of {task_id} failed: {exc}") from exc
        return SlackThread.from_dict(snapshot.get("thread")) if snapshot.exists else None

    def update(self, task_id: str, fn: Callable[[SlackThread], SlackThread | None],
               seed: SlackThread | None = None) -> SlackThread | None:
        ref = self._threads.document(doc_id(task_id))

        def body(tx: Any) -> SlackThread | None:
            snapshot = ref.get(transaction=tx)
            current = SlackThread.from_dict(snapshot.get("thread")) if snapshot.exists else (seed or SlackThread(task_id))
            new = changed(current, fn(current))
            if new is not None:
                tx.set(ref, {"task_id": task_id, "version": new.version, "thread": new.to_dict()})
            return new

        with self._stripes(task_id):  # this process's writers queue here rather than abort each other
            return run_transaction(self.client, body, f"slack thread {task_id}")

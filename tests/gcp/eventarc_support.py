"""Build Eventarc's Firestore CloudEvents (binary mode) from real jobs, with the google-events types."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from google.events.cloud.firestore_v1.types import ArrayValue, Document, DocumentEventData, MapValue, Value
from google.protobuf import struct_pb2

from orchestrator.domain.job import Job
from orchestrator.stores.firestore import FirestoreJobStore
from tests.gcp_fixtures import GCP_PROJECT

WRITTEN = "google.cloud.firestore.document.v1.written"
DATABASE = f"projects/{GCP_PROJECT}/databases/(default)"


def to_value(item: Any) -> Value:
    """A Python value as Firestore stores it."""
    if item is None:
        return Value(null_value=struct_pb2.NullValue.NULL_VALUE)
    if isinstance(item, bool):
        return Value(boolean_value=item)
    if isinstance(item, int):
        return Value(integer_value=item)
    if isinstance(item, float):
        return Value(double_value=item)
    if isinstance(item, str):
        return Value(string_value=item)
    if isinstance(item, datetime):
        return Value(timestamp_value=item)
    if isinstance(item, dict):
        return Value(map_value=MapValue(fields={k: to_value(v) for k, v in item.items()}))
    if isinstance(item, (list, tuple)):
        return Value(array_value=ArrayValue(values=[to_value(v) for v in item]))
    raise TypeError(f"no Firestore value for {type(item).__name__}")


def job_document(job: Job, kind: str, collection: str = "training_jobs", updated: datetime | None = None) -> Document:
    """The job's document as FirestoreJobStore writes it."""
    fields = FirestoreJobStore._encode(job, kind)
    return Document(name=f"{DATABASE}/documents/{collection}/{job.task_id}",
                    fields={k: to_value(v) for k, v in fields.items()},
                    create_time=job.created_at, update_time=updated or datetime.now(timezone.utc))


def written(after: Document | None, before: Document | None = None) -> bytes:
    """A DocumentEventData body: ``after`` None is a delete."""
    data = DocumentEventData()
    if after is not None:
        data.value = after
    if before is not None:
        data.old_value = before
    return DocumentEventData.serialize(data)


def headers(document_path: str, event_type: str = WRITTEN, content_type: str = "application/protobuf") -> dict[str, str]:
    """Binary-mode CloudEvent headers, as Eventarc sends them to Cloud Run."""
    return {
        "Content-Type": content_type,
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-source": f"//firestore.googleapis.com/{DATABASE}",
        "ce-type": event_type,
        "ce-subject": f"documents/{document_path}",
        "ce-time": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "ce-dataschema": "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/"
                         "firestore/v1/data.proto",
        "ce-database": "(default)",
        "ce-namespace": "(default)",
        "ce-document": document_path,
        "ce-location": "nam5",
        "ce-project": GCP_PROJECT,
    }

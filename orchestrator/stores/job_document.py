"""The layout of a job's Firestore document, without the Firestore client.

Query fields sit at the top level (``status``, ``priority``, ``created_at``,
``tenant_id``, ``channel``, ``idempotency_key``, ``version``, ``last_change``, and for the
estimates' history ``shape`` (architecture@input_size) and ``dataset_key`` (a digest of tenant
and dataset: a dataset string may be 1 KiB long)); the
full record is the ``job`` map (``Job.model_dump(mode="json")``), which is what is
read back. The Firestore store writes and reads it; the Eventarc route
(orchestrator/api/eventarc.py) decodes the documents Eventarc delivers with it,
so neither the route nor its tests need the store class.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from orchestrator.domain.job import Job

JOB_FIELD, KIND_FIELD = "job", "last_change"  # the full record, and what its newest change was


def shape_key(architecture: str, input_size: int) -> str:
    """The ``shape`` field: which completed jobs an estimate learns from."""
    return f"{architecture}@{int(input_size)}"


def dataset_key(tenant_id: str, dataset: str) -> str:
    """The ``dataset_key`` field: the tenant's jobs on one dataset string."""
    return hashlib.sha256(f"{tenant_id}\x00{dataset}".encode()).hexdigest()[:32]


def encode(job: Job, kind: str) -> dict[str, Any]:
    """The document's fields for ``job`` after a change of kind ``kind``."""
    return {
        "task_id": job.task_id,
        "tenant_id": job.tenant_id,
        "status": job.status.value,
        "priority": job.priority,
        "created_at": job.created_at,
        "channel": job.origin.channel,
        "idempotency_key": job.idempotency_key,
        "version": job.version,
        "shape": shape_key(job.spec.model_params.architecture, job.spec.model_params.input_size),
        "dataset_key": dataset_key(job.tenant_id, job.spec.dataset),
        KIND_FIELD: kind,
        JOB_FIELD: job.model_dump(mode="json"),
    }


def decode_fields(fields: Mapping[str, Any]) -> tuple[Job, str]:
    """(job, kind of its last change) from a job document's fields as plain values
    (e.g. decoded from an Eventarc event's document)."""
    return Job.model_validate(fields[JOB_FIELD]), str(fields.get(KIND_FIELD) or "update")

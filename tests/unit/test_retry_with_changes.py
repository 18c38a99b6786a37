"""JobService.retry with a changed spec (Retry with changes), on a real SQLite store: the new job
has the new spec, is linked, stores its lineage, and starts over when it changes what is trained."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import SpecError
from orchestrator.domain.lineage import describe
from tests.unit.test_retry_resume import SPEC, service, stopped  # noqa: F401 - service is a fixture


def test_a_retry_with_changes_stores_the_new_spec_and_its_lineage(service):
    first = stopped(service, "file:///last.pt")
    changed = SPEC.model_copy(update={"training_params": SPEC.training_params.model_copy(update={"epochs": 10})})
    second = service.retry("t", first, spec=changed)
    stored = service.store.get(second.task_id)
    assert stored.retry_of == first and stored.spec.training_params.epochs == 10
    assert stored.lineage.number == 2 and describe(stored.lineage.changes) == "epochs 3\u219210"
    assert stored.resume_from is None  # more epochs is another training: it starts over
    assert stored.status_view()["lineage"]["number"] == 2

    service.cancel("t", second.task_id, by="U1")
    third = service.retry("t", second.task_id)  # a plain retry of v2 is v3, the same spec
    assert third.lineage.number == 3 and third.lineage.changes == []
    assert [v.task_id for v in third.lineage.earlier] == [first, second.task_id]


def test_a_retry_that_only_raises_the_cost_cap_still_continues_from_the_checkpoint(service):
    first = stopped(service, "file:///last.pt")
    again = service.retry("t", first, spec=SPEC.model_copy(update={"max_cost_usd": 5.0}))
    assert again.resume_from == first and again.spec.max_cost_usd == 5.0


def test_a_changed_spec_of_another_tenant_is_refused(service):
    first = stopped(service, "file:///last.pt")
    with pytest.raises(SpecError) as refused:
        service.retry("t", first, spec=SPEC.model_copy(update={"tenant_id": "other"}))
    assert refused.value.errors[0].field == "tenant_id"
    assert [j.task_id for j in service.store.list(limit=10)] == [first]

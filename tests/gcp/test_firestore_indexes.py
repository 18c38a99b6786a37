"""firestore.indexes.json covers every query the code sends (the emulator needs no index; Firestore does).

The recorder (tests/support/firestore_queries.py) checks every test's queries; these
tests make the coverage explicit: they send each query the store and the registry
can send, with the argument shapes their callers use, on the emulator, and check
the recorded shapes against the file; every declared index is needed by one of them;
a query sent by a child process is recorded too; and a test whose query lacks its
index fails at teardown naming the query (a real pytest run on a copy of the file).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest

from orchestrator.domain.status import JobStatus
from tests import emulators
from tests.contract.support import BASE_TIME, make_job
from tests.firestore_index_rules import DESC, IndexFile, Shape, conjunctions, problems
from tests.gcp_fixtures import GCP_PROJECT
from tests.support import firestore_queries
from tests.support.firestore_queries import INDEX_ENV, LOG_ENV, REPO, read_shapes

pytestmark = pytest.mark.gcp

INDEX_FILE = REPO / "firestore.indexes.json"
QUEUED_INDEX = (("status", "ASCENDING"), ("priority", "DESCENDING"), ("created_at", "ASCENDING"))


def send_every_query(client, monkeypatch) -> list[Shape]:
    """Each query the store and registry send, as their callers call them; the shapes recorded."""
    from orchestrator.budgets.firestore import FirestoreBudgets
    from orchestrator.registry.base import ModelEntry
    from orchestrator.registry.firestore import FirestoreModelRegistry
    from orchestrator.stores import firestore as stores
    from orchestrator.stores.firestore import FirestoreJobStore

    import firestore_query_log

    monkeypatch.setattr(stores, "QUEUE_PAGE", 2)  # queued_by_tenant pages past a tenant (tenant_id > ·)
    store = FirestoreJobStore(client, "training_jobs")
    registry = FirestoreModelRegistry(client)
    budgets = FirestoreBudgets(client)
    for n, tenant in enumerate(["team-a", "team-a", "team-b", "team-b", "team-c"]):
        store.create(make_job(tenant, channel="C1" if n % 2 else None, age=n, priority=n % 3))
    registry.register(ModelEntry(tenant_id="team-a", name="m", task_id="t1", architecture="yolo11n",
                                 checkpoint="gs://b/best.pt"))
    with firestore_query_log.captured() as sent:
        for tenant, statuses, channel in itertools.product(["team-a", None], [[JobStatus.RUNNING], None],
                                                            ["C1", None]):
            # API /jobs (?status=), Slack lookups and /train list (a channel), the notifier's scan of
            # finished jobs (no tenant), and the rest of what list() accepts (the contract tests use it)
            store.list(tenant_id=tenant, statuses=statuses, channel=channel)
        store.queued(limit=1000)                                         # notifier scan
        store.queued_by_tenant(2, skip={"team-c"})                       # dispatcher (fair share)
        store.count_queued("team-a", at_most=5)                          # queue cap per tenant
        store.count_queued("team-a")
        store.active()                                                   # dispatcher, sweeps
        store.completed_like("yolo11n", 640, limit=20)                   # estimates: similar runs
        store.completed_on("team-a", "data.yaml", limit=5)               # estimates: a dataset's size
        store.created_between("team-a", BASE_TIME - timedelta(days=31), BASE_TIME)  # budgets: a period's jobs
        budgets.list()                                                   # budgets in force
        budgets.audit(limit=10)                                          # the budget audit trail
        store.watch(lambda event: None).stop()                           # change feed (on_snapshot)
        registry.list("team-a")                                          # GET /models
        registry.list("team-a", "m")                                     # retention, weights trust
        registry.get("team-a", "m", 1)                                   # promote: the version
        registry.aliases("team-a")                                       # GET /models, /train models
        registry.aliases("team-a", "m")                                  # GET /models?name=
    return [Shape.from_json(shape) for shape in sent]


@pytest.fixture(scope="module")
def shapes(firestore_emulator) -> list[Shape]:
    from google.cloud import firestore

    from orchestrator.stores.firestore import close_client

    emulators.clear_firestore(firestore_emulator, GCP_PROJECT)
    client = firestore.Client(project=GCP_PROJECT)
    with pytest.MonkeyPatch.context() as monkeypatch:
        try:
            yield send_every_query(client, monkeypatch)
        finally:
            close_client(client)


def test_every_query_the_code_sends_is_indexed(shapes):
    sites = {(shape.site.split(":")[0], shape.site.rsplit("(", 1)[-1].rstrip(")")) for shape in shapes}
    stores, registry = "orchestrator/stores/firestore.py", "orchestrator/registry/firestore.py"
    assert {(stores, name) for name in ("list", "queued", "queued_by_tenant", "count_queued", "active", "watch",
                                        "completed_like", "completed_on", "created_between")} \
        | {(registry, "list"), (registry, "get"), (registry, "aliases"), ("orchestrator/budgets/firestore.py", "list"),
           ("orchestrator/budgets/firestore.py", "audit")} <= sites, sites
    kinds = {shape.kind for shape in shapes}
    assert {"query", "aggregation", "listen"} <= kinds
    assert any(s.orders == (("tenant_id", "ASCENDING"), ("priority", DESC), ("created_at", "ASCENDING"))
               and ("tenant_id", ">") in conjunctions(s.filter)[0] for s in shapes), "never paged past a tenant"
    assert problems(shapes, IndexFile.load(INDEX_FILE)) == []


def test_every_declared_index_is_needed_by_a_query(shapes):
    """An index nothing needs costs a write per job write; each one's removal must break a query."""
    declared = IndexFile.load(INDEX_FILE)
    assert declared.composites
    for index in declared.composites:
        missing = problems(shapes, declared.without(index.group, index.fields))
        assert missing, f"no query needs {index}"
        assert all("needs a composite index" in m and index.group in m for m in missing)


def test_large_maps_are_exempt_and_no_query_uses_them(shapes):
    declared = IndexFile.load(INDEX_FILE)
    assert declared.exempt("training_jobs", "job") and declared.exempt("training_jobs", "job.notify.posted")
    assert declared.exempt("model_registry", "entry")
    assert not declared.exempt("training_jobs", "status")
    used = {f for s in shapes for conj in conjunctions(s.filter) for f, _ in conj} | \
        {f for s in shapes for f, _ in s.orders}
    assert not {f for f in used if f.split(".")[0] in ("job", "entry")}


def test_the_file_is_for_the_collections_the_code_uses():
    """The indexes are per collection group: renaming a default without the file breaks production."""
    import inspect

    from orchestrator.config import Settings
    from orchestrator.registry.firestore import FirestoreModelRegistry

    jobs = Settings.model_fields["FIRESTORE_COLLECTION"].default
    models = inspect.signature(FirestoreModelRegistry).parameters["collection"].default
    declared = IndexFile.load(INDEX_FILE)
    assert {c.group for c in declared.composites} == {jobs, models}
    assert {group for group, _ in declared.overrides} == {jobs, models}


def test_queries_sent_by_child_processes_are_recorded(clean_firestore):
    recorder = firestore_queries._recorder
    assert recorder is not None and os.environ[LOG_ENV] == str(recorder.log)
    start = recorder.log.stat().st_size if recorder.log.exists() else 0
    child = textwrap.dedent(f"""
        from google.cloud import firestore
        from orchestrator.stores.firestore import FirestoreJobStore
        FirestoreJobStore(firestore.Client(project={GCP_PROJECT!r}), "training_jobs").queued(limit=3)
    """)
    subprocess.run([sys.executable, "-c", child], check=True, cwd=REPO, timeout=120)
    recorded, _ = read_shapes(recorder.log, start)
    assert any(s.site.endswith("(queued)") and s.orders[0] == ("priority", DESC) for s in recorded), recorded


INNER_TESTS = f"""
from google.cloud import firestore
from orchestrator.stores.firestore import FirestoreJobStore

def store():
    return FirestoreJobStore(firestore.Client(project={GCP_PROJECT!r}), "training_jobs")

def test_takes_the_queue():
    store().queued(limit=10)

def test_lists_a_tenant():
    store().list(tenant_id="team-a")
"""


def test_a_query_whose_index_is_removed_fails_its_test_naming_the_query(clean_firestore, tmp_path):
    data = json.loads(INDEX_FILE.read_text())
    data["indexes"] = [i for i in data["indexes"]
                       if tuple((f["fieldPath"], f["order"]) for f in i["fields"]) != QUEUED_INDEX]
    assert len(data["indexes"]) == len(json.loads(INDEX_FILE.read_text())["indexes"]) - 1
    copy = tmp_path / "firestore.indexes.json"
    copy.write_text(json.dumps(data))
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = {**os.environ, INDEX_ENV: str(copy),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.support.firestore_queries",
                          "-p", "no:cacheprovider", "test_inner.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "2 passed, 1 error" in output and "test_lists_a_tenant -" not in output, output
    assert "ERROR at teardown of test_takes_the_queue" in output, output
    assert ("Firestore would refuse the query collection training_jobs where status == · "
            "order by priority DESC, created_at ASC") in output, output
    assert "orchestrator/stores/firestore.py:" in output and "(queued)]" in output, output
    assert '"fieldPath": "priority", "order": "DESCENDING"' in output, output

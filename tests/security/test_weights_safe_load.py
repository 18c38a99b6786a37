"""Weights never run code and are never another tenant's (issue 14, finding 1).

The attack: a ``.pt`` whose pickle ``__reduce__`` runs Python (here it writes a marker file)
given as ``model_params.weights``. Ultralytics' default loader (``weights_only=False``) runs it;
the worker loads every checkpoint with the safe loader, so the job fails with ``bad_weights``
and the marker never appears, whether the payload comes as a file in the tenant's data root
(through the real service and a real worker), as the job's own resume checkpoint, or behind a
``task:`` or ``registry:`` reference. Weights outside the tenant's data roots, or that are
none of the accepted forms, are refused at submit with a 422 naming the field, with one text
for an existing and a missing file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.backends import open_backend
from orchestrator.config import load_settings
from orchestrator.domain.job import Job
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.registry.base import ModelEntry
from orchestrator.trust import roots, weights
from tests.support.serve import ServeProcess, kill_workers, tiny_job, wait_for

TENANT = "e2e"
WEIGHTS = "model_params.weights"
# Written by a subprocess so this test process never defines (or imports) the payload class.
MAKE_PAYLOAD = """
import sys, torch
marker = sys.argv[2]
class Payload:
    def __reduce__(self):
        return (exec, ("open(%r, 'w').write('payload ran')" % marker,))
torch.save({"model": Payload(), "epoch": 0, "optimizer": {"state": 1}, "train_args": {"epochs": 3}}, sys.argv[1])
"""


def make_payload(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", MAKE_PAYLOAD, str(path), str(marker)], check=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> tuple[Path, Path]:
    """(the crafted .pt, the marker it would write)."""
    base = tmp_path_factory.mktemp("payload")
    marker = base / "PAYLOAD-RAN"
    return make_payload(base / "evil.pt", marker), marker


def test_the_payload_is_live_under_a_plain_unpickle(payload, tmp_path):
    """Control: without the safe loader the crafted file does run code (so the refusals below mean something)."""
    _, marker = payload
    control = make_payload(tmp_path / "control.pt", tmp_path / "control-marker")
    subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1], weights_only=False)",
                    str(control)], check=True, timeout=120)
    assert (tmp_path / "control-marker").read_text() == "payload ran"
    assert not marker.exists()


# -- the worker's loader --------------------------------------------------------


@pytest.fixture
def worker_env(tmp_path):
    """worker.offline prepared in this process (Ultralytics in its offline, safe-loading set-up)."""
    from worker import offline

    home = tmp_path / "home"
    offline.prepare(home)
    import ultralytics  # noqa: F401

    offline.configure_ultralytics(home)  # also refuses to go on if safe loading is off
    return home


def test_the_safe_loader_refuses_the_payload_and_it_never_runs(worker_env, payload):
    from worker import checkpoints

    evil, marker = payload
    with pytest.raises(checkpoints.BadWeights, match="refused by the safe loader; nothing in it was run") as caught:
        checkpoints.load_safely(evil)
    assert caught.value.refused
    assert not marker.exists()


def test_ultralytics_own_checkpoint_rewrite_is_safe_too(worker_env, payload, tmp_path):
    """strip_optimizer (run on last.pt and best.pt after training) loads with weights_only=False upstream."""
    from ultralytics.utils.torch_utils import strip_optimizer

    evil, marker = payload
    copy = tmp_path / "last.pt"
    copy.write_bytes(evil.read_bytes())
    assert strip_optimizer(copy) == {}  # "not a valid Ultralytics model": skipped, not unpickled
    assert not marker.exists()


def test_a_payload_as_the_resume_checkpoint_fails_the_job_instead_of_resuming(worker_env, payload, tmp_path):
    from orchestrator.artifacts.local import LocalArtifactStore
    from worker import checkpoints

    evil, marker = payload
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    artifacts.upload("job-1", checkpoints.LAST, evil)
    with pytest.raises(checkpoints.BadWeights) as caught:
        checkpoints.fetch_resume(artifacts, "job-1", tmp_path / "weights")
    assert caught.value.refused and "resume checkpoint last.pt" in str(caught.value)
    assert not marker.exists()
    # A merely truncated checkpoint still costs only the progress: training starts fresh.
    (tmp_path / "truncated.pt").write_bytes(evil.read_bytes()[:100])
    artifacts.upload("job-2", checkpoints.LAST, tmp_path / "truncated.pt")
    assert checkpoints.fetch_resume(artifacts, "job-2", tmp_path / "weights2") is None


def _finished_job(backend, tenant: str, status: JobStatus = JobStatus.COMPLETED) -> Job:
    job, _ = backend.store.create(Job(tenant_id=tenant, spec=JobSpec(tenant_id=tenant)))
    # A stored record in the finished state (the transitions are tested elsewhere).
    backend.store.update(job.task_id, lambda j: j.model_copy(update={"status": status}), kind=f"status:{status.value}")
    return backend.store.get(job.task_id)


def test_task_and_registry_references_are_the_tenants_own_and_safely_loaded(worker_env, payload, tmp_path):
    from worker import checkpoints

    evil, marker = payload
    backend = open_backend(load_settings(LAXAI_HOME=worker_env))
    try:
        mine, theirs = _finished_job(backend, "acme"), _finished_job(backend, "rival")
        for job in (mine, theirs):
            backend.artifacts.upload(job.task_id, checkpoints.BEST, evil)
        backend.registry.register(ModelEntry(tenant_id="acme", name="prod", task_id=mine.task_id,
                                             architecture="yolov8n", checkpoint="x"))
        fetch = lambda text: checkpoints.fetch_weights(  # noqa: E731
            text, "acme", backend, [tmp_path / "roots"], worker_env / "weights", tmp_path / "start.pt")
        for text in (f"task:{mine.task_id}", "registry:prod", "registry:prod:v1"):
            with pytest.raises(checkpoints.BadWeights, match="refused by the safe loader"):
                fetch(text)
        for text in (f"task:{theirs.task_id}", "registry:prod:v2", "registry:theirs", f"task:{mine.task_id}:last"):
            with pytest.raises(checkpoints.BadWeights, match="not \\(or no longer\\) available to you"):
                fetch(text)
        assert not marker.exists()
    finally:
        backend.close()


def test_a_pretrained_name_offline_fails_at_once_with_a_clear_error(worker_env, monkeypatch):
    import socket
    import time

    from worker import checkpoints

    def no_network(*args, **kwargs):
        raise socket.gaierror("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    started = time.monotonic()
    with pytest.raises(checkpoints.BadWeights, match="pretrained yolo11n.pt is not on this worker"):
        checkpoints.pretrained("yolo11n.pt", worker_env / "weights")
    assert time.monotonic() - started < 30


# -- the accepted forms (pure) -----------------------------------------------------


def test_weights_forms_are_parsed_and_anything_else_is_refused():
    assert weights.parse("registry:line counter:v3") == weights.RegistryWeights("line counter", 3)
    assert weights.parse("registry:prod") == weights.RegistryWeights("prod", None)
    assert weights.parse("task:0599de49-5940-40e1-b919-1b365d2da257:last").file == weights.LAST
    assert weights.parse("task:abc").file == weights.BEST
    assert weights.parse("yolo11n.pt") == weights.PretrainedWeights("yolo11n.pt")
    assert weights.parse("models/mine.pt") == weights.FileWeights("models/mine.pt")
    for bad in ("https://evil.example/x.pt", "gs://bucket/x.pt", "registry:", "task:../x", "task:a:middle",
                "model.safetensors", "/etc/passwd"):
        with pytest.raises(weights.WeightsError, match="registry:NAME"):
            weights.parse(bad)


# -- through the real service over HTTP ------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = tmp_path_factory.mktemp("weights-service") / "state"
    with ServeProcess(home, tenant=TENANT) as serve:
        yield serve
    kill_workers(home)


def detail(response) -> list[dict]:
    return response.json()["detail"]


@pytest.mark.slow
def test_a_payload_in_the_tenants_own_root_fails_the_job_bad_weights_and_never_runs(service, payload):
    evil, marker = payload
    own = service.home / "data" / TENANT
    own.mkdir(parents=True, exist_ok=True)
    (own / "evil.pt").write_bytes(evil.read_bytes())
    with service.client() as client:
        submitted = client.post("/orchestrate", json=tiny_job(model_params={"weights": "evil.pt"}))
        assert submitted.status_code == 202, submitted.text
        task = submitted.json()["task_id"]
        view = wait_for(client, [task])[task]
    assert view["status"] == "failed", view
    assert view["error"]["reason"] == "bad_weights"
    assert "refused by the safe loader" in view["error"]["message"]
    assert not marker.exists()


def test_weights_outside_the_tenants_roots_are_refused_with_one_text(service, tmp_path):
    other = service.home / "data" / "rival"
    other.mkdir(parents=True, exist_ok=True)
    (other / "theirs.pt").write_bytes(b"x")
    own = service.home / "data" / TENANT
    own.mkdir(parents=True, exist_ok=True)
    (tmp_path / "outside.pt").write_bytes(b"x")
    (own / "link.pt").unlink(missing_ok=True)
    (own / "link.pt").symlink_to(tmp_path / "outside.pt")
    attempts = {
        "another tenant's file": str(other / "theirs.pt"),
        "a ../ escape to it": "../rival/theirs.pt",
        "a symlink out of the root": "link.pt",
        "through /proc/self/cwd": "/proc/self/cwd/pyproject.toml.pt",
        "an existing file elsewhere": str(tmp_path / "outside.pt"),
        "a missing file in the root": "missing.pt",
        "a missing file elsewhere": str(tmp_path / "missing.pt"),
    }
    texts = set()
    with service.client() as client:
        stored = len(client.get("/jobs", params={"limit": 500}).json()["jobs"])
        for what, value in attempts.items():
            response = client.post("/orchestrate", json=tiny_job(model_params={"weights": value}))
            assert response.status_code == 422, (what, response.text)
            (error,) = detail(response)
            assert error["field"] == WEIGHTS, what
            texts.add(error["message"])
        assert texts == {roots.NOT_IN_ROOTS}  # existing or missing, outside or inside: the same words
        for value in ("https://evil.example/x.pt", "registry:nope", "task:0599de49"):
            response = client.post("/orchestrate", json=tiny_job(model_params={"weights": value}))
            assert response.status_code == 422 and detail(response)[0]["field"] == WEIGHTS, response.text
        assert len(client.get("/jobs", params={"limit": 500}).json()["jobs"]) == stored  # nothing was stored


def test_a_file_inside_the_tenants_root_is_accepted(service):
    own = service.home / "data" / TENANT / "models"
    own.mkdir(parents=True, exist_ok=True)
    (own / "start.pt").write_bytes(b"checked again, and safely loaded, by the worker")
    with service.client() as client:
        response = client.post("/orchestrate", json=tiny_job(model_params={"weights": "models/start.pt"},
                                                             training_params={"epochs": 1}))
        assert response.status_code == 202, response.text
        client.post(f"/jobs/{response.json()['task_id']}/cancel")

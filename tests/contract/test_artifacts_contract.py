"""ArtifactStore contract.

Runs on the local store, and on GcsArtifactStore over an in-memory stand-in for
a bucket (there is no GCS emulator here): that checks the adapter's object names
and its not-found handling, not Google Cloud Storage itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.api_core import exceptions as gexc

from orchestrator.artifacts.gcs import GcsArtifactStore
from orchestrator.artifacts.local import LocalArtifactStore


class MemoryBlob:
    def __init__(self, objects: dict[str, bytes], name: str):
        self.objects, self.name = objects, name

    def upload_from_filename(self, filename: str) -> None:
        self.objects[self.name] = Path(filename).read_bytes()

    def download_to_filename(self, filename: str) -> None:
        if self.name not in self.objects:
            raise gexc.NotFound(f"no object {self.name}")
        Path(filename).write_bytes(self.objects[self.name])

    def exists(self) -> bool:
        return self.name in self.objects


class MemoryBucket:
    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def blob(self, name: str) -> MemoryBlob:
        return MemoryBlob(self.objects, name)


class MemoryClient:
    def __init__(self):
        self.buckets: dict[str, MemoryBucket] = {}

    def bucket(self, name: str) -> MemoryBucket:
        return self.buckets.setdefault(name, MemoryBucket())


@pytest.fixture(params=["local", "gcs-memory"])
def artifacts(request, tmp_path):
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    return GcsArtifactStore("laxai-artifacts", client=MemoryClient())


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_upload_then_download(artifacts, tmp_path):
    uri = artifacts.upload("task-1", "last.pt", write(tmp_path / "src" / "last.pt", b"epoch 1"))
    assert uri == artifacts.uri("task-1", "last.pt")
    assert artifacts.exists("task-1", "last.pt")
    dest = tmp_path / "elsewhere" / "resume.pt"
    assert artifacts.download("task-1", "last.pt", dest)
    assert dest.read_bytes() == b"epoch 1"
    assert not list(dest.parent.glob(".*partial"))


def test_upload_replaces_the_previous_file(artifacts, tmp_path):
    artifacts.upload("task-1", "last.pt", write(tmp_path / "a.pt", b"epoch 1"))
    artifacts.upload("task-1", "last.pt", write(tmp_path / "b.pt", b"epoch 2"))
    assert artifacts.download("task-1", "last.pt", tmp_path / "out.pt")
    assert (tmp_path / "out.pt").read_bytes() == b"epoch 2"


def test_missing_files(artifacts, tmp_path):
    artifacts.upload("task-1", "last.pt", write(tmp_path / "a.pt", b"x"))
    assert not artifacts.exists("task-1", "best.pt")
    assert not artifacts.exists("task-2", "last.pt")
    dest = tmp_path / "out" / "best.pt"
    assert artifacts.download("task-1", "best.pt", dest) is False
    assert not dest.exists()


def test_files_are_kept_per_task(artifacts, tmp_path):
    artifacts.upload("task-1", "last.pt", write(tmp_path / "a.pt", b"one"))
    artifacts.upload("task-2", "last.pt", write(tmp_path / "b.pt", b"two"))
    assert artifacts.uri("task-1", "last.pt") != artifacts.uri("task-2", "last.pt")
    artifacts.download("task-2", "last.pt", tmp_path / "out.pt")
    assert (tmp_path / "out.pt").read_bytes() == b"two"


@pytest.mark.parametrize(("task_id", "name"), [("a/b", "last.pt"), ("task-1", "../x"), ("task-1", ".hidden")])
def test_names_that_escape_are_refused(artifacts, task_id, name):
    with pytest.raises(ValueError):
        artifacts.uri(task_id, name)


def test_gcs_object_names():
    store = GcsArtifactStore("laxai-artifacts", client=MemoryClient())
    assert store.uri("task-1", "best.pt") == "gs://laxai-artifacts/artifacts/task-1/best.pt"

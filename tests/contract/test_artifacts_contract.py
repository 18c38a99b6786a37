"""ArtifactStore contract.

Runs on the local store, and on GcsArtifactStore over an in-memory stand-in for
a bucket (there is no GCS emulator here): that checks the adapter's object names
and its not-found handling, not Google Cloud Storage itself.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc

from orchestrator.artifacts.base import Superseded
from orchestrator.artifacts.gcs import GcsArtifactStore
from orchestrator.artifacts.local import LocalArtifactStore


class MemoryObject:
    """A stored object version: bytes, generation (new per upload), metageneration (new per patch)."""

    def __init__(self, data: bytes, generation: int, metadata: dict | None):
        self.data, self.generation, self.metageneration, self.metadata = data, generation, 1, metadata


class MemoryBlob:
    """Models GCS's preconditions as the JSON API states them: ifGenerationMatch=0 means "absent",
    a mismatch is 412 (PreconditionFailed) and nothing changes."""

    def __init__(self, bucket: MemoryBucket, name: str, stored: MemoryObject | None = None):
        self.bucket, self.name = bucket, name
        self.metadata = stored.metadata if stored else None
        self.generation = stored.generation if stored else None
        self.metageneration = stored.metageneration if stored else None

    def _check(self, if_generation_match=None, if_metageneration_match=None) -> MemoryObject | None:
        live = self.bucket.objects.get(self.name)
        if if_generation_match is not None and (live.generation if live else 0) != if_generation_match:
            raise gexc.PreconditionFailed(f"{self.name}: generation")
        if if_metageneration_match is not None and (live is None or live.metageneration != if_metageneration_match):
            raise gexc.PreconditionFailed(f"{self.name}: metageneration")
        return live

    def upload_from_filename(self, filename: str, **preconditions) -> None:
        data = Path(filename).read_bytes()
        with self.bucket.lock:
            self._check(**preconditions)
            self.bucket.generation += 1
            self.bucket.objects[self.name] = MemoryObject(data, self.bucket.generation, self.metadata)

    def patch(self, **preconditions) -> None:
        with self.bucket.lock:
            live = self._check(**preconditions)
            if live is None:
                raise gexc.NotFound(self.name)
            live.metadata, live.metageneration = self.metadata, live.metageneration + 1

    def download_to_filename(self, filename: str) -> None:
        if self.name not in self.bucket.objects:
            raise gexc.NotFound(f"no object {self.name}")
        Path(filename).write_bytes(self.bucket.objects[self.name].data)

    def exists(self) -> bool:
        return self.name in self.bucket.objects


class MemoryBucket:
    def __init__(self):
        self.objects: dict[str, MemoryObject] = {}
        self.generation = 0
        self.lock = threading.Lock()

    def blob(self, name: str) -> MemoryBlob:
        return MemoryBlob(self, name)

    def get_blob(self, name: str) -> MemoryBlob | None:
        stored = self.objects.get(name)
        return MemoryBlob(self, name, stored) if stored else None


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


# -- fencing: an earlier attempt never replaces a later attempt's file -----------------------------


def read(artifacts, tmp_path: Path, name: str = "last.pt") -> bytes:
    assert artifacts.download("task-1", name, tmp_path / "read" / name)
    return (tmp_path / "read" / name).read_bytes()


def test_an_earlier_attempt_cannot_replace_a_later_attempts_file(artifacts, tmp_path):
    artifacts.upload("task-1", "last.pt", write(tmp_path / "a1.pt", b"attempt 1, epoch 1"), attempt=1)
    artifacts.upload("task-1", "last.pt", write(tmp_path / "a2.pt", b"attempt 2, epoch 2"), attempt=2)
    with pytest.raises(Superseded) as refused:
        artifacts.upload("task-1", "last.pt", write(tmp_path / "z.pt", b"zombie attempt 1, epoch 3"), attempt=1)
    assert refused.value.owner == 2
    assert read(artifacts, tmp_path) == b"attempt 2, epoch 2"
    artifacts.upload("task-1", "last.pt", write(tmp_path / "a2b.pt", b"attempt 2, epoch 3"), attempt=2)
    assert read(artifacts, tmp_path) == b"attempt 2, epoch 3"  # the owner itself goes on writing
    assert artifacts.owner("task-1", "last.pt") == 2


def test_a_claim_fences_the_file_before_the_new_attempt_uploads_anything(artifacts, tmp_path):
    artifacts.upload("task-1", "last.pt", write(tmp_path / "a1.pt", b"attempt 1, epoch 1"), attempt=1)
    artifacts.claim("task-1", "last.pt", 2)
    assert read(artifacts, tmp_path) == b"attempt 1, epoch 1"  # a claim changes no content
    with pytest.raises(Superseded):
        artifacts.upload("task-1", "last.pt", write(tmp_path / "z.pt", b"zombie"), attempt=1)
    with pytest.raises(Superseded):
        artifacts.claim("task-1", "last.pt", 1)
    assert read(artifacts, tmp_path) == b"attempt 1, epoch 1"
    artifacts.claim("task-1", "best.pt", 2)  # nothing stored yet: nothing to protect, nothing created
    assert not artifacts.exists("task-1", "best.pt")


def test_racing_uploads_of_two_attempts_leave_the_later_attempts_file(artifacts, tmp_path):
    """Both attempts upload at once, many times; whatever the interleaving, once attempt 2 has
    written, attempt 1 never replaces it (the check and the replacement are one step)."""
    sources = {n: write(tmp_path / f"a{n}.pt", f"attempt {n}".encode() * 1000) for n in (1, 2)}
    refused: list[int] = []
    failed: list[BaseException] = []
    go, second_done = threading.Barrier(2), threading.Event()

    def later() -> None:
        go.wait()
        try:
            for _ in range(40):
                artifacts.upload("task-1", "last.pt", sources[2], attempt=2)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failed.append(exc)
        finally:
            second_done.set()  # the zombie's last tries go on either way

    def zombie() -> None:
        go.wait()
        extra = 5  # tries after attempt 2 finished: each must be refused
        while extra:
            if second_done.is_set():
                extra -= 1
            try:
                artifacts.upload("task-1", "last.pt", sources[1], attempt=1)
            except Superseded:
                refused.append(1)

    threads = [threading.Thread(target=later), threading.Thread(target=zombie)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failed, f"attempt 2's uploads gave up: {failed!r}"
    assert read(artifacts, tmp_path) == sources[2].read_bytes()
    assert len(refused) >= 5 and artifacts.owner("task-1", "last.pt") == 2

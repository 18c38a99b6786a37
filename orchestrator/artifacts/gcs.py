"""GCS ArtifactStore: ``gs://<ARTIFACT_BUCKET>/<prefix>/<task_id>/<name>`` (prefix ``artifacts``).

A thin layer over google-cloud-storage. An object upload is atomic (readers see
the old or the new object, never half of one); downloads go to a partial file
first, then are renamed into place. The storage client is injectable.

Fencing (see ``artifacts.base``): the object's metadata ``laxai-attempt`` names the attempt
that owns it. A fenced upload reads the object, checks the owner, and replaces it only if the
object is still that very version (``ifGenerationMatch`` and ``ifMetagenerationMatch``, 0 when
there was none): a claim or upload by a later attempt in between changes the generation or the
metageneration, GCS answers 412, and the check runs again against the new owner. A claim
rewrites only the metadata (a new metageneration), under the same preconditions.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc

from orchestrator.artifacts.base import ArtifactStore, check_owner

OWNER_KEY = "laxai-attempt"
CAS_TRIES = 20  # 412s in a row before giving up: only another writer of the same file causes one
CAS_BACKOFF_SECONDS = 0.005  # times the try number, jittered: two writers in lockstep fall out of step


def _back_off(tries: int) -> None:
    time.sleep(random.uniform(0, CAS_BACKOFF_SECONDS * tries))


class GcsArtifactStore(ArtifactStore):
    def __init__(self, bucket: str, prefix: str = "artifacts", client: Any = None, project: str | None = None):
        if client is None:
            from google.cloud import storage

            client = storage.Client(project=project)
        self.client = client
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._bucket = client.bucket(bucket)

    def _key(self, task_id: str, name: str) -> str:
        if not task_id or not name or "/" in task_id or "/" in name or name.startswith("."):
            raise ValueError(f"bad artifact name {task_id}/{name}")
        return f"{self.prefix}/{task_id}/{name}" if self.prefix else f"{task_id}/{name}"

    def uri(self, task_id: str, name: str) -> str:
        return f"gs://{self.bucket_name}/{self._key(task_id, name)}"

    def upload(self, task_id: str, name: str, source: Path, attempt: int | None = None) -> str:
        key = self._key(task_id, name)
        if attempt is None:
            self._bucket.blob(key).upload_from_filename(str(source))
            return self.uri(task_id, name)
        for tries in range(1, CAS_TRIES + 1):
            current = self._owned(task_id, name, attempt)
            blob = self._bucket.blob(key)
            blob.metadata = {OWNER_KEY: str(attempt)}
            try:
                blob.upload_from_filename(str(source), **_unchanged(current))
            except gexc.PreconditionFailed:
                _back_off(tries)
                continue  # another writer got in between: check its owner again
            return self.uri(task_id, name)
        raise RuntimeError(f"upload of {key}: the object kept changing ({CAS_TRIES} tries)")

    def claim(self, task_id: str, name: str, attempt: int) -> None:
        for tries in range(1, CAS_TRIES + 1):
            current = self._owned(task_id, name, attempt)
            if current is None:
                return  # no checkpoint yet: nothing an earlier attempt could overwrite
            current.metadata = {**(current.metadata or {}), OWNER_KEY: str(attempt)}
            try:
                current.patch(**_unchanged(current))
            except gexc.PreconditionFailed:
                _back_off(tries)
                continue
            return
        raise RuntimeError(f"claim of {self._key(task_id, name)}: the object kept changing ({CAS_TRIES} tries)")

    def owner(self, task_id: str, name: str) -> int | None:
        """The attempt that owns the object, None when it has no owner (or does not exist)."""
        return _owner_of(self._bucket.get_blob(self._key(task_id, name)))

    def download(self, task_id: str, name: str, dest: Path) -> bool:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            self._bucket.blob(self._key(task_id, name)).download_to_filename(str(partial))
        except gexc.NotFound:
            partial.unlink(missing_ok=True)
            return False
        os.replace(partial, dest)
        return True

    def exists(self, task_id: str, name: str) -> bool:
        return bool(self._bucket.blob(self._key(task_id, name)).exists())

    def _owned(self, task_id: str, name: str, attempt: int) -> Any:
        """The object as it is now (None when absent), after checking ``attempt`` may replace it."""
        current = self._bucket.get_blob(self._key(task_id, name))
        check_owner(task_id, name, attempt, _owner_of(current))
        return current


def _owner_of(blob: Any) -> int | None:
    value = (blob.metadata or {}).get(OWNER_KEY) if blob is not None else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _unchanged(current: Any) -> dict[str, int]:
    """Preconditions that hold only while the object is still ``current`` (or still absent)."""
    if current is None:
        return {"if_generation_match": 0}
    return {"if_generation_match": current.generation, "if_metageneration_match": current.metageneration}

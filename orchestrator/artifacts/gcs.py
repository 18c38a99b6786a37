"""GCS ArtifactStore: ``gs://<ARTIFACT_BUCKET>/<prefix>/<task_id>/<name>`` (prefix ``artifacts``).

A thin layer over google-cloud-storage. An object upload is atomic (readers see
the old or the new object, never half of one); downloads go to a partial file
first, then are renamed into place. The storage client is injectable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc

from orchestrator.artifacts.base import ArtifactStore


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

    def upload(self, task_id: str, name: str, source: Path) -> str:
        self._bucket.blob(self._key(task_id, name)).upload_from_filename(str(source))
        return self.uri(task_id, name)

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

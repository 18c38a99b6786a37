"""gs:// datasets: copy a bucket prefix holding a YOLO data.yaml to local disk (gcp backend).

``gs://bucket/path/data.yaml`` takes the folder the yaml is in; ``gs://bucket/path`` takes
that folder, which must hold a data.yaml. Files are cached under
``$LAXAI_HOME/datasets/gcs/<bucket>/<path>/`` and skipped when already there with the same
size, so a continuation on the same machine does not download them again. The objects'
sizes are added up before anything is downloaded: over ``MAX_DATASET_BYTES`` the job fails
with a clear ``dataset_error``. Ultralytics gets a sanitised copy of the yaml
(``orchestrator.trust.data_yaml``, as for local datasets) whose ``path`` is the local folder and
whose splits must lie inside it. The storage client is injectable (there is no GCS emulator).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator.trust import data_yaml

DEFAULT_MAX_BYTES = 8 * 2**30
LOCAL_YAML = "data.local.yaml"
YAML_SUFFIXES = (".yaml", ".yml")


class GcsDatasetError(ValueError):
    """The bucket prefix is not a usable dataset; the message says why."""


def split(uri: str) -> tuple[str, str, str | None]:
    """(bucket, folder prefix, yaml file name or None) of a gs:// dataset URI."""
    rest = uri[len("gs://"):] if uri.startswith("gs://") else ""
    bucket, _, path = rest.partition("/")
    if not bucket:
        raise GcsDatasetError(f"{uri}: expected gs://BUCKET/PATH")
    path = path.strip("/")
    if path.endswith(YAML_SUFFIXES):
        folder, _, name = path.rpartition("/")
        return bucket, folder, name
    return bucket, path, None


def download(uri: str, root: Path, client: Any = None, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Copy the dataset to ``root`` and return the sanitised local data.yaml (``path`` made local)."""
    bucket, folder, yaml_name = split(uri)
    if client is None:
        from google.cloud import storage

        client = storage.Client()
    prefix = f"{folder}/" if folder else ""
    local = root / bucket / folder
    blobs = [b for b in client.list_blobs(bucket, prefix=prefix)
             if b.name[len(prefix):] and not b.name.endswith("/")]  # not "folder" placeholder objects
    total = sum(blob.size or 0 for blob in blobs)
    if total > max_bytes:
        raise GcsDatasetError(f"{uri}: the dataset is {total / 2**30:.2f} GiB, over MAX_DATASET_BYTES "
                              f"({max_bytes / 2**30:.2f} GiB); use a smaller dataset or ask for a higher limit")
    count = 0
    for blob in blobs:
        relative = blob.name[len(prefix):]
        target = (local / relative).resolve()
        if local.resolve() not in target.parents:
            raise GcsDatasetError(f"{uri}: object {blob.name!r} escapes the dataset folder")
        count += 1
        if target.exists() and blob.size is not None and target.stat().st_size == blob.size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        blob.download_to_filename(str(partial))
        os.replace(partial, target)
    if count == 0:
        raise GcsDatasetError(f"{uri}: no objects under gs://{bucket}/{prefix}")
    names = [yaml_name] if yaml_name else ["data.yaml", "data.yml"]
    source = next((local / name for name in names if (local / name).is_file()), None)
    if source is None:
        raise GcsDatasetError(f"{uri}: no {' or '.join(names)} in gs://{bucket}/{prefix}")
    return localise(source)


def localise(source: Path) -> Path:
    """The sanitised copy of the yaml, beside it: ``path`` is the local folder, splits stay inside it."""
    folder = source.parent.resolve()
    try:
        return data_yaml.write_copy(source, [folder], source.with_name(LOCAL_YAML), foreign_absolute_path=True)
    except data_yaml.DataYamlError as exc:
        raise GcsDatasetError(f"{source.name}: {exc}") from None

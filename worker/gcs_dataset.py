"""gs:// datasets: copy a bucket prefix holding a YOLO data.yaml to local disk (gcp backend).

``gs://bucket/path/data.yaml`` takes the folder the yaml is in; ``gs://bucket/path`` takes
that folder, which must hold a data.yaml. Files are cached under
``$LAXAI_HOME/datasets/gcs/<bucket>/<path>/`` and skipped when already there with the same
size, so a continuation on the same machine does not download them again. The local copy
of the yaml gets ``path:`` set to the local folder, so relative ``train:``/``val:`` entries
resolve there. The storage client is injectable (there is no GCS emulator).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

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


def download(uri: str, root: Path, client: Any = None) -> Path:
    """Copy the dataset to ``root`` and return the local data.yaml (with ``path`` made local)."""
    bucket, folder, yaml_name = split(uri)
    if client is None:
        from google.cloud import storage

        client = storage.Client()
    prefix = f"{folder}/" if folder else ""
    local = root / bucket / folder
    count = 0
    for blob in client.list_blobs(bucket, prefix=prefix):
        relative = blob.name[len(prefix):]
        if not relative or relative.endswith("/"):
            continue  # "folder" placeholder objects
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
    """A copy of the yaml whose ``path`` is the absolute local folder."""
    try:
        data = yaml.safe_load(source.read_text()) or {}
    except yaml.YAMLError as exc:
        raise GcsDatasetError(f"{source.name} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise GcsDatasetError(f"{source.name} must be a YAML mapping")
    declared = data.get("path")
    if not declared or not Path(str(declared)).is_absolute() or not Path(str(declared)).exists():
        data["path"] = str(source.parent.resolve())
    target = source.with_name(LOCAL_YAML)
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target

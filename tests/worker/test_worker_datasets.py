"""Datasets: the synthetic generator is deterministic and YOLO-shaped; bad datasets give clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.domain.spec import JobSpec
from worker import datasets, offline
from worker.datasets import DatasetError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synthetic_dataset_is_deterministic_and_yolo_shaped(tmp_path):
    first = datasets.synthetic(tmp_path / "a", 12, 64)
    second = datasets.synthetic(tmp_path / "b", 12, 64)
    assert first.name == "data.yaml" and first.parent.name == "synthetic-12-64"
    assert _files(first.parent) == _files(second.parent)  # same bytes, image for image

    root = first.parent
    config = yaml.safe_load(first.read_text())
    assert config["train"] == "images/train" and config["val"] == "images/val"
    assert config["nc"] == len(config["names"]) == 3
    for split, count in (("train", 12), ("val", 3)):
        images = sorted((root / "images" / split).glob("*.jpg"))
        labels = sorted((root / "labels" / split).glob("*.txt"))
        assert len(images) == len(labels) == count
        assert [p.stem for p in images] == [p.stem for p in labels]
        for label in labels:
            rows = [line.split() for line in label.read_text().splitlines()]
            assert 1 <= len(rows) <= 3
            for cls, *box in rows:
                assert 0 <= int(cls) < 3
                cx, cy, w, h = map(float, box)
                assert 0 < w <= 1 and 0 < h <= 1
                assert 0 <= cx - w / 2 and cx + w / 2 <= 1 + 1e-6
                assert 0 <= cy - h / 2 and cy + h / 2 <= 1 + 1e-6
    from PIL import Image

    with Image.open(next((root / "images" / "train").glob("*.jpg"))) as image:
        assert image.size == (64, 64) and image.mode == "RGB"


def test_synthetic_dataset_is_generated_once_and_reused(tmp_path):
    spec = JobSpec(tenant_id="t", dataset="synthetic:8", model_params={"input_size": 64})
    path = datasets.resolve(spec, tmp_path)
    assert path == tmp_path / "datasets" / "synthetic-8-64" / "data.yaml"
    marker = path.parent / "images" / "train" / "train_00000.jpg"
    stamp = marker.stat().st_mtime_ns
    assert datasets.resolve(spec, tmp_path) == path
    assert marker.stat().st_mtime_ns == stamp  # not rewritten
    # No half-built staging directories left behind.
    assert [p.name for p in (tmp_path / "datasets").iterdir() if p.name != ".locks"] == ["synthetic-8-64"]


def test_local_dataset_paths(tmp_path):
    roots = (tmp_path,)
    directory = tmp_path / "mine"
    directory.mkdir()
    with pytest.raises(DatasetError, match="has no data.yaml"):
        datasets.local_dataset(str(directory), roots)
    (directory / "data.yaml").write_text("train: images\nval: images\nnames: [a]\n")
    assert datasets.local_dataset(str(directory), roots) == directory / "data.yaml"
    assert datasets.local_dataset(str(directory / "data.yaml"), roots) == directory / "data.yaml"
    assert datasets.local_dataset("mine", roots) == directory / "data.yaml"  # relative: from the first root
    with pytest.raises(DatasetError, match="not found in your data roots"):
        datasets.local_dataset(str(tmp_path / "missing.yaml"), roots)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a data.yaml"):
        datasets.local_dataset(str(tmp_path / "notes.txt"), roots)


def test_a_local_dataset_trains_from_a_sanitised_copy(tmp_path):
    home = tmp_path / "home"
    root = home / "data" / "t"
    made = datasets.synthetic(root, 8, 64).parent  # a real YOLO dataset inside the tenant's root
    (made / "data.yaml").write_text((made / "data.yaml").read_text() + "download: https://example.com/x.zip\n")
    spec = JobSpec(tenant_id="t", dataset=str(made))
    local = datasets.resolve(spec, home, out_dir=tmp_path / "run")
    assert local.parent == tmp_path / "run"
    data = yaml.safe_load(local.read_text())
    assert "download" not in data
    assert data["path"] == str(made.resolve()) and data["val"] == str((made / "images" / "val").resolve())
    assert data["names"] == {0: "rectangle", 1: "ellipse", 2: "triangle"} and data["nc"] == 3
    offline.prepare(home)
    datasets.check(local)


def test_gs_dataset_needs_the_gcp_backend():
    with pytest.raises(DatasetError, match="gs:// datasets need the gcp backend"):
        datasets.local_dataset("gs://bucket/data.yaml", ())
    with pytest.raises(DatasetError, match="gs:// datasets need the gcp backend"):
        datasets.resolve(JobSpec(tenant_id="t", dataset="gs://bucket/data.yaml"), Path("/nonexistent"))


# The tenant's gs:// dataset prefixes (DATASET_BUCKETS) in these tests.
SETS = datasets.DataAccess((), ("gs://team-data/sets/",))
B_SETS = datasets.DataAccess((), ("gs://b/",))


class Blob:
    def __init__(self, name: str, data: bytes):
        self.name, self.data, self.size = name, data, len(data)
        self.downloads = 0

    def download_to_filename(self, filename: str) -> None:
        self.downloads += 1
        Path(filename).write_bytes(self.data)


class Bucket:
    """An in-memory stand-in for a bucket (there is no GCS emulator): list and download."""

    def __init__(self, name: str, root: Path, prefix: str):
        self.name = name
        self.blobs = [Blob(f"{prefix}/{p.relative_to(root)}", p.read_bytes()) for p in sorted(root.rglob("*"))
                      if p.is_file()]

    def list_blobs(self, bucket: str, prefix: str = ""):
        assert bucket == self.name
        return [b for b in self.blobs if b.name.startswith(prefix)]


def test_gs_dataset_is_downloaded_once_made_local_and_passes_ultralytics_checks(tmp_path):
    source = datasets.synthetic(tmp_path / "made", 8, 64).parent
    bucket = Bucket("team-data", source, "sets/shapes")
    home = tmp_path / "home"
    for uri in ("gs://team-data/sets/shapes/data.yaml", "gs://team-data/sets/shapes"):
        spec = JobSpec(tenant_id="t", dataset=uri)
        local = datasets.resolve(spec, home, backend="gcp", gcs_client=bucket, access=SETS)
        assert local.parent == home / "datasets" / "gcs" / "team-data" / "sets" / "shapes"
        assert yaml.safe_load(local.read_text())["path"] == str(local.parent)
        assert sorted(p.name for p in (local.parent / "images" / "train").iterdir()) == \
            sorted(p.name for p in (source / "images" / "train").iterdir())
    assert all(blob.downloads == 1 for blob in bucket.blobs)  # the second resolve used the cache
    offline.prepare(home)
    datasets.check(local)


def test_gs_dataset_errors_name_the_problem(tmp_path):
    empty = Bucket("b", tmp_path, "nothing")
    with pytest.raises(DatasetError, match="no objects under gs://b/sets/"):
        datasets.resolve(JobSpec(tenant_id="t", dataset="gs://b/sets"), tmp_path, backend="gcp", gcs_client=empty,
                         access=B_SETS)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("no yaml here")
    no_yaml = Bucket("b", tmp_path / "x", "sets")
    with pytest.raises(DatasetError, match="no data.yaml or data.yml"):
        datasets.resolve(JobSpec(tenant_id="t", dataset="gs://b/sets"), tmp_path / "h", backend="gcp",
                         gcs_client=no_yaml, access=B_SETS)

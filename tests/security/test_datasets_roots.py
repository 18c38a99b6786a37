"""Datasets stay inside the tenant's data roots and data.yaml is ours to parse (findings 2, 3, 4).

- a dataset outside the tenant's roots (another tenant's directory, /proc/self/cwd, a ../
  escape, a symlink out) is refused at submit with a 422 naming ``dataset``, with the same
  text for an existing and a missing path (no existence oracle); gs:// only under the tenant's
  DATASET_BUCKETS prefixes, and a download over MAX_DATASET_BYTES fails with dataset_error;
- a data.yaml whose ``download:`` is a Python script never runs it (a real worker process, and
  Ultralytics' own autodownload check on the sanitised copy), and an alias bomb is refused at
  once; splits must exist inside the root, with no ../ or symlink escapes; names are bounded.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from orchestrator.config import load_settings
from orchestrator.domain.errors import SpecError
from orchestrator.domain.spec import JobSpec
from orchestrator.trust import checks, data_yaml, roots
from orchestrator.trust.data_yaml import DataYamlError
from tests.support.serve import ServeProcess, kill_workers, tiny_job, wait_for
from worker import datasets
from worker.datasets import DataAccess, DatasetError

TENANT = "e2e"
# A 500-byte YAML whose aliases expand ×9 per level (tens of MB inside Ultralytics' name check).
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
) + "names: *i\ntrain: images\nval: images\n"


def python_download(marker: Path) -> str:
    return f"download: |\n  open({str(marker)!r}, 'w').write('download ran')\n"


def write_dataset(root: Path, *, val: bool = True, extra: str = "") -> Path:
    """A minimal YOLO dataset folder (one image, one label) with its data.yaml."""
    from PIL import Image

    for split in ("train", "val") if val else ("train",):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (120, 60, 30)).save(root / "images" / split / "a.jpg")
        (root / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    text = "train: images/train\n" + ("val: images/val\n" if val else "") + "names: [thing]\n" + extra
    (root / "data.yaml").write_text(text)
    return root


# -- data.yaml ---------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    assert len(ALIAS_BOMB) < 600
    started = time.monotonic()
    with pytest.raises(DataYamlError, match="anchors or aliases"):
        data_yaml.load(ALIAS_BOMB)
    assert time.monotonic() - started < 5
    # The same through the worker's dataset resolution: a dataset_error, nothing handed to Ultralytics.
    home = tmp_path / "home"
    bomb = home / "data" / "t" / "bomb"
    bomb.mkdir(parents=True)
    (bomb / "images").mkdir()
    (bomb / "data.yaml").write_text(ALIAS_BOMB)
    with pytest.raises(DatasetError, match="anchors or aliases"):
        datasets.resolve(JobSpec(tenant_id="t", dataset="bomb"), home, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_oversized_tagged_and_non_mapping_documents_are_refused(tmp_path):
    big = tmp_path / "data.yaml"
    big.write_text("names: [a]\n# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(DataYamlError, match="over 1024 KiB"):
        data_yaml.read(big)
    with pytest.raises(DataYamlError, match="not valid plain YAML"):
        data_yaml.load("names: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(DataYamlError, match="must be a mapping"):
        data_yaml.load("- train\n- val\n")


def test_names_are_bounded(tmp_path):
    assert data_yaml.check_names({"names": {0: "a", 1: "b"}}) == ["a", "b"]
    assert data_yaml.check_names({"nc": 2}) == ["class_0", "class_1"]
    for bad, words in (({"names": [f"c{i}" for i in range(1001)]}, "1 to 1000"),
                       ({"names": ["x" * 101]}, "1 to 100 printable"),
                       ({"names": ["a\x1b[31m"]}, "printable"),
                       ({"names": {0: "a", 5: "b"}}, "keys 0, 1, 2"),
                       ({"names": [["nested"]]}, "short text"),
                       ({"names": ["a"], "nc": 2}, "does not match"),
                       ({"nc": 10**9}, "from 1 to 1000"),
                       ({}, "names: required")):
        with pytest.raises(DataYamlError, match=words):
            data_yaml.check_names(bad)


def test_splits_must_exist_inside_the_root_without_escapes(tmp_path):
    root = write_dataset(tmp_path / "root" / "set")
    outside = write_dataset(tmp_path / "elsewhere")
    allowed = [(tmp_path / "root").resolve()]
    good = data_yaml.sanitise({"train": "images/train", "val": "images/val", "names": ["a"]}, root, allowed)
    assert good["train"] == str((root / "images" / "train").resolve())
    assert good["path"] == str(root.resolve())
    escapes = {
        "a ../ escape": {"val": "../../elsewhere/images/val"},
        "an absolute path out": {"val": str(outside / "images" / "val")},
        "a path: out": {"path": "../../elsewhere"},
        "missing": {"val": "images/nothing"},
    }
    for what, patch in escapes.items():
        with pytest.raises(DataYamlError, match="does not exist inside the dataset's data root"):
            data_yaml.sanitise({"train": "images/train", "val": "images/val", "names": ["a"], **patch},
                               root, allowed)
    # A link inside a split folder (or its labels folder) that leads out of the root.
    (root / "images" / "val" / "stolen.jpg").symlink_to(outside / "images" / "val" / "a.jpg")
    with pytest.raises(DataYamlError, match="a link inside it"):
        data_yaml.sanitise({"train": "images/train", "val": "images/val", "names": ["a"]}, root, allowed)
    (root / "images" / "val" / "stolen.jpg").unlink()
    (root / "labels" / "val" / "stolen.txt").symlink_to(outside / "labels" / "val" / "a.txt")
    with pytest.raises(DataYamlError, match="a link inside it"):
        data_yaml.sanitise({"train": "images/train", "val": "images/val", "names": ["a"]}, root, allowed)
    # An image list naming a file outside the root.
    (root / "val.txt").write_text(f"./images/val/a.jpg\n{outside / 'images' / 'val' / 'a.jpg'}\n")
    with pytest.raises(DataYamlError, match="lists an image outside"):
        data_yaml.sanitise({"train": "images/train", "val": "val.txt", "names": ["a"]}, root, allowed)


def test_ultralytics_autodownload_never_runs_the_script_of_a_sanitised_copy(tmp_path):
    from worker import offline

    offline.prepare(tmp_path / "home")
    from ultralytics.data.utils import check_det_dataset

    marker = tmp_path / "DOWNLOAD-RAN"
    root = write_dataset(tmp_path / "home" / "data" / "t" / "set", extra=python_download(marker))
    copy = datasets.resolve(JobSpec(tenant_id="t", dataset="set"), tmp_path / "home", out_dir=tmp_path / "run")
    assert "download" not in yaml.safe_load(copy.read_text())
    # Ultralytics' trainer and final validator check with autodownload=True: with the copy, nothing runs,
    # even when val has gone missing by then.
    check_det_dataset(str(copy), autodownload=True)
    (root / "images" / "val" / "a.jpg").unlink()
    (root / "images" / "val").rmdir()
    with pytest.raises(FileNotFoundError):
        check_det_dataset(str(copy), autodownload=True)
    assert not marker.exists()
    # Control: the user's own file, given to Ultralytics directly, does run its script.
    check_det_dataset(str(root / "data.yaml"), autodownload=True)
    assert marker.read_text() == "download ran"


# -- gs:// ----------------------------------------------------------------------------------


def gcp_backend(**settings: str) -> SimpleNamespace:
    """What the submit checks read of a gcp backend (its name and Settings)."""
    return SimpleNamespace(name="gcp", settings=load_settings(LAXAI_BACKEND="gcp", **settings))


def test_gs_datasets_only_under_the_tenants_prefixes():
    default = gcp_backend(ARTIFACT_BUCKET="laxai-art")
    checks.check_dataset(JobSpec(tenant_id="acme", dataset="gs://laxai-art/datasets/acme/shapes"), default)
    configured = gcp_backend(ARTIFACT_BUCKET="laxai-art", DATASET_BUCKETS="acme=gs://acme-data/,*=gs://public/sets")
    checks.check_dataset(JobSpec(tenant_id="acme", dataset="gs://acme-data/x/data.yaml"), configured)
    checks.check_dataset(JobSpec(tenant_id="rival", dataset="gs://public/sets/coco8"), configured)
    refused = [
        (default, "acme", "gs://laxai-art/datasets/rival/shapes"),  # another tenant's prefix
        (default, "acme", "gs://laxai-art/datasets/acme/../rival/shapes"),
        (default, "acme", "gs://laxai-art/datasets/acmeX/shapes"),
        (default, "acme", "gs://other-bucket/data.yaml"),
        (configured, "rival", "gs://acme-data/x/data.yaml"),
        (configured, "acme", "gs://public/setsX/data.yaml"),
    ]
    for backend, tenant, uri in refused:
        with pytest.raises(SpecError) as caught:
            checks.check_dataset(JobSpec(tenant_id=tenant, dataset=uri), backend)
        (error,) = caught.value.errors
        assert (error.field, error.message) == ("dataset", roots.NOT_IN_BUCKETS), uri


def test_on_gcp_local_paths_are_checked_lexically_against_the_roots():
    backend = gcp_backend(ARTIFACT_BUCKET="laxai-art")
    mine = str(backend.settings.home / "data" / "acme" / "set")
    checks.check_dataset(JobSpec(tenant_id="acme", dataset=mine), backend)  # the worker resolves it again
    for path in ("/etc", "/proc/self/cwd", mine + "/../../rival/set", "../rival/set"):
        with pytest.raises(SpecError) as caught:
            checks.check_dataset(JobSpec(tenant_id="acme", dataset=path), backend)
        assert caught.value.errors[0].message == roots.NOT_IN_ROOTS, path


@pytest.mark.parametrize("variable, value", [
    ("LAXAI_DATA_ROOTS", "acme=relative/dir"),
    ("LAXAI_DATA_ROOTS", "acme"),
    ("DATASET_BUCKETS", "acme=s3://bucket/x"),
    ("DATASET_BUCKETS", "*=gs://"),
    ("MAX_DATASET_BYTES", "lots"),
])
def test_bad_trust_settings_fail_at_start_naming_the_variable(variable, value):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=variable):
        load_settings(**{variable: value})


class Blob:
    def __init__(self, name: str, size: int):
        self.name, self.size, self.downloads = name, size, 0

    def download_to_filename(self, filename: str) -> None:
        self.downloads += 1
        Path(filename).write_bytes(b"\0" * self.size)


class Bucket:
    """An in-memory stand-in for a bucket (there is no GCS emulator)."""

    def __init__(self, blobs: list[Blob]):
        self.blobs = blobs

    def list_blobs(self, bucket: str, prefix: str = ""):
        return [b for b in self.blobs if b.name.startswith(prefix)]


def test_a_gs_dataset_outside_the_prefix_or_over_the_size_cap_is_a_dataset_error(tmp_path):
    blobs = [Blob("datasets/t/big/data.yaml", 100), Blob("datasets/t/big/images/a.jpg", 2000)]
    bucket = Bucket(blobs)
    access = DataAccess((), ("gs://art/datasets/t/",), max_bytes=1000)
    with pytest.raises(DatasetError, match="over MAX_DATASET_BYTES"):
        datasets.resolve(JobSpec(tenant_id="t", dataset="gs://art/datasets/t/big"), tmp_path, backend="gcp",
                         gcs_client=bucket, access=access)
    assert all(blob.downloads == 0 for blob in blobs)  # refused before anything was downloaded
    with pytest.raises(DatasetError, match="not under your dataset prefixes"):
        datasets.resolve(JobSpec(tenant_id="t", dataset="gs://art/datasets/u/big"), tmp_path, backend="gcp",
                         gcs_client=bucket, access=access)
    settings = load_settings(ARTIFACT_BUCKET="art", MAX_DATASET_BYTES="1Gi")
    assert DataAccess.of(settings, "t") == DataAccess(tuple(settings.data_roots("t")), ("gs://art/datasets/t/",),
                                                      2**30)


# -- local paths through the real service and a real worker --------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = tmp_path_factory.mktemp("datasets-service") / "state"
    with ServeProcess(home, tenant=TENANT) as serve:
        yield serve
    kill_workers(home)


def test_datasets_outside_the_tenants_roots_are_refused_with_one_text(service, tmp_path):
    own = service.home / "data" / TENANT
    write_dataset(service.home / "data" / "rival" / "theirs")
    write_dataset(tmp_path / "outside")
    own.mkdir(parents=True, exist_ok=True)
    (own / "link").unlink(missing_ok=True)
    (own / "link").symlink_to(tmp_path / "outside")
    attempts = {
        "another tenant's dataset": str(service.home / "data" / "rival" / "theirs"),
        "its data.yaml": str(service.home / "data" / "rival" / "theirs" / "data.yaml"),
        "a ../ escape": "../rival/theirs",
        "the service's working directory": "/proc/self/cwd",
        "a symlink out of the root": "link",
        "an existing dataset elsewhere": str(tmp_path / "outside"),
        "a missing path in the root": "nothing-here",
        "a missing path elsewhere": str(tmp_path / "nothing-here"),
    }
    texts = set()
    with service.client() as client:
        for what, value in attempts.items():
            response = client.post("/orchestrate", json=tiny_job(dataset=value))
            assert response.status_code == 422, (what, response.text)
            (error,) = response.json()["detail"]
            assert error["field"] == "dataset", what
            texts.add(error["message"])
    assert texts == {roots.NOT_IN_ROOTS}  # existing or missing: the same words


@pytest.mark.slow
def test_a_download_script_with_val_missing_never_runs_in_a_real_worker(service, tmp_path):
    marker = tmp_path / "DOWNLOAD-RAN"
    write_dataset(service.home / "data" / TENANT / "scripted", val=False,
                  extra="val: images/val\n" + python_download(marker))
    with service.client() as client:
        submitted = client.post("/orchestrate", json=tiny_job(dataset="scripted"))
        assert submitted.status_code == 202, submitted.text
        task = submitted.json()["task_id"]
        view = wait_for(client, [task], timeout=180)[task]
        logs = client.get(f"/jobs/{task}/logs").json()["lines"]
    assert view["status"] == "failed" and view["error"]["reason"] == "dataset_error", view
    assert "val: 'images/val' does not exist inside the dataset's data root" in view["error"]["message"]
    assert not marker.exists(), logs

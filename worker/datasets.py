"""Datasets: turn a JobSpec's ``dataset`` into the path of a YOLO data.yaml.

- ``synthetic`` / ``synthetic:N``: a generated, deterministic detection dataset of
  coloured shapes on noisy backgrounds, written once under
  ``$LAXAI_HOME/datasets/synthetic-<N>-<imgsz>/`` and reused; past ``LAXAI_CACHE_BYTES``
  the least recently used ones are deleted (never one a live worker holds).
- a path to a data.yaml, or a directory holding one, inside the tenant's data roots
  (``orchestrator.trust.roots``): Ultralytics gets a sanitised copy of the yaml
  (``orchestrator.trust.data_yaml``), never the file itself.
- ``gs://bucket/path[/data.yaml]``: on the gcp backend, the prefix is copied to
  ``$LAXAI_HOME/datasets/gcs/`` (``worker.gcs_dataset``); locally it is refused with a
  clear message.

Every problem raises ``DatasetError`` with words a user can act on; the runner
fails the job with reason ``dataset_error``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.config import Settings
from orchestrator.domain.spec import JobSpec
from orchestrator.trust import data_yaml, roots

CLASS_NAMES = ("rectangle", "ellipse", "triangle")
# Each class has its own hue range, so the shapes are learnable in a couple of epochs.
CLASS_COLOURS = ((220, 60, 50), (60, 200, 70), (60, 90, 230))
SEED = 20240601
DATA_YAML_NAMES = ("data.yaml", "data.yml")
STALE_STAGING_SECONDS = 6 * 3600  # a staging dir this old was left by a killed worker

# Called between generated images; raises to abandon generation (e.g. worker.stop.StopFlags.check).
Checkpoint = Callable[[], None]


class DatasetError(ValueError):
    """The dataset cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class DataAccess:
    """What one tenant's job may read: local roots, gs:// prefixes and the gs:// download cap."""

    roots: tuple[Path, ...]
    prefixes: tuple[str, ...] = ()
    max_bytes: int = 8 * 2**30

    @classmethod
    def of(cls, settings: Settings, tenant: str) -> DataAccess:
        return cls(tuple(settings.data_roots(tenant)), tuple(settings.dataset_prefixes(tenant)),
                   settings.MAX_DATASET_BYTES)


def resolve(spec: JobSpec, home: Path, check: Checkpoint | None = None, backend: str = "local",
            gcs_client: object = None, access: DataAccess | None = None, out_dir: Path | None = None) -> Path:
    """The data.yaml to train on (generating the synthetic dataset, or downloading a gs:// one, if needed).

    A tenant's dataset is checked against ``access`` (default: only ``$LAXAI_HOME/data/<tenant>/``)
    and Ultralytics gets a sanitised copy of its data.yaml, written to ``out_dir``."""
    count = spec.synthetic_images()
    if count is not None:
        return synthetic(home / "datasets", count, spec.model_params.input_size, check)
    access = access or DataAccess((home / "data" / spec.tenant_id,))
    if spec.dataset.startswith("gs://") and backend == "gcp":
        return _gcs_dataset(spec.dataset, home, gcs_client, access)
    source = local_dataset(spec.dataset, access.roots, backend)
    target = (out_dir or home / "datasets" / "checked") / f"data-{_digest(str(source))}.yaml"
    try:
        return data_yaml.write_copy(source, roots.real_roots(access.roots), target)
    except data_yaml.DataYamlError as exc:
        raise DatasetError(f"dataset {spec.dataset}: {exc}") from None


def _gcs_dataset(uri: str, home: Path, gcs_client: object, access: DataAccess) -> Path:
    from worker import gcs_dataset

    if not roots.gs_inside(uri, access.prefixes):
        raise DatasetError(f"dataset {uri}: {roots.NOT_IN_BUCKETS}")
    try:
        return gcs_dataset.download(uri, home / "datasets" / "gcs", gcs_client, max_bytes=access.max_bytes)
    except gcs_dataset.GcsDatasetError as exc:
        raise DatasetError(str(exc)) from None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def local_dataset(dataset: str, allowed: tuple[Path, ...] | list[Path], backend: str = "local") -> Path:
    """The real path of a data.yaml (or of the one in a dataset directory) inside the ``allowed``
    roots; gs:// and other URLs are refused. Missing and outside read the same (no existence oracle)."""
    if dataset.startswith("gs://"):
        raise DatasetError(
            f"{dataset}: gs:// datasets need the gcp backend (LAXAI_BACKEND=gcp); "
            "locally use 'synthetic', 'synthetic:N', a data.yaml path or a dataset directory"
        )
    if "://" in dataset:
        raise DatasetError(f"{dataset}: only local paths, 'synthetic' or gs:// URIs are supported")
    try:
        # Relative paths start at the tenant's own data directory, whatever the working directory.
        path = roots.resolve_inside(dataset, allowed)
        if path.is_dir():
            found = next((path / name for name in DATA_YAML_NAMES if (path / name).is_file()), None)
            if found is None:
                raise DatasetError(f"dataset directory {dataset} has no data.yaml (expected {dataset}/data.yaml)")
            path = roots.resolve_inside(str(found), allowed)  # the yaml itself may be a link out
        if not path.is_file():  # a device or a FIFO would block the read
            raise roots.OutsideRoots(dataset)
    except roots.OutsideRoots:
        raise DatasetError(f"dataset {dataset}: {roots.NOT_IN_ROOTS}") from None
    if path.suffix not in (".yaml", ".yml"):
        raise DatasetError(f"dataset {dataset} is not a data.yaml; pass a YOLO data.yaml or the directory holding it")
    return path


def check(data_yaml: Path) -> None:
    """Validate with Ultralytics' own checker, without any download (call after worker.offline.prepare)."""
    from ultralytics.data.utils import check_det_dataset

    try:
        check_det_dataset(str(data_yaml), autodownload=False)
    except Exception as exc:  # noqa: BLE001 - any failure here is the dataset's, reported to the user
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetError(f"the dataset is not usable: {text}") from exc


# -- synthetic ---------------------------------------------------------------


def synthetic(root: Path, count: int, imgsz: int, check: Checkpoint | None = None,
              cache_bytes: int | None = None) -> Path:
    """Generate (once) and return the data.yaml of a synthetic dataset with ``count`` train images.

    The worker holds a shared lock on the dataset for as long as it lives, so the cache
    pruning that follows (oldest last use first, past ``LAXAI_CACHE_BYTES``) never removes
    a dataset a running worker trains on.
    """
    target = root / f"synthetic-{count}-{imgsz}"
    data_yaml = target / "data.yaml"
    root.mkdir(parents=True, exist_ok=True)
    _hold(root, target.name)
    if not data_yaml.is_file():
        _remove_stale_staging(root, target.name)
        _build(root, target, count, imgsz, check)
    os.utime(target)  # its last use, which pruning goes by
    prune_cache(root, _cache_bytes() if cache_bytes is None else cache_bytes, keep=target.name)
    return data_yaml


def _build(root: Path, target: Path, count: int, imgsz: int, check: Checkpoint | None) -> None:
    # Build in a private temp dir and rename: the rename is atomic, so a concurrent worker either
    # sees the finished dataset or builds its own copy and discards it.
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}."))
    try:
        write_synthetic(staging, count, imgsz, check)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "data.yaml").is_file():  # not a lost race: a real error
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# Lock files of the datasets this process uses, held open (shared) until it exits; the kernel
# drops the locks when the process dies, however it dies.
_HELD: dict[str, int] = {}


def _lock_file(root: Path, name: str) -> Path:
    # Never deleted: unlinking a lock file would let two holders see two locks.
    locks = root / ".locks"
    locks.mkdir(exist_ok=True)
    return locks / name


def _hold(root: Path, name: str) -> None:
    key = str(root / name)
    if key not in _HELD:
        fd = os.open(_lock_file(root, name), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a pruner is deleting this very dataset
        _HELD[key] = fd


def _cache_bytes() -> int:
    from orchestrator.config import load_settings

    return load_settings().LAXAI_CACHE_BYTES


def _tree_bytes(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def prune_cache(root: Path, limit: int, keep: str | None = None) -> list[str]:
    """Delete synthetic datasets, least recently used first, until they total at most ``limit``
    bytes; never ``keep`` nor one a live worker holds. Returns the names deleted."""
    for trash in root.glob(".trash-synthetic-*"):  # a prune killed mid-delete
        shutil.rmtree(trash, ignore_errors=True)
    found = []
    for path in root.glob("synthetic-*"):
        try:
            found.append((path.stat().st_mtime, path.name, _tree_bytes(path)))
        except OSError:
            continue
    total = sum(size for _, _, size in found)
    deleted = []
    for _, name, size in sorted(found):
        if total <= limit:
            break
        if name != keep and _delete_unused(root, name):
            total -= size
            deleted.append(name)
    return deleted


def _delete_unused(root: Path, name: str) -> bool:
    """Delete one dataset if no process holds it (renamed first, so no reader sees half of it)."""
    try:
        fd = os.open(_lock_file(root, name), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # in use
        trash = root / f".trash-{name}-{os.getpid()}"
        try:
            os.rename(root / name, trash)
        except OSError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _remove_stale_staging(root: Path, name: str) -> None:
    """Staging dirs of workers killed mid-generation (a live one is never this old)."""
    for leftover in root.glob(f".{name}.*"):
        try:
            if time.time() - leftover.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def val_count(count: int) -> int:
    """About a quarter of the train size, never fewer than two images."""
    return max(2, round(count / 4))


def write_synthetic(directory: Path, count: int, imgsz: int, check: Checkpoint | None = None) -> None:
    """Write images/{train,val}, labels/{train,val} and data.yaml into ``directory``."""
    from PIL import Image

    for split, n, offset in (("train", count, 0), ("val", val_count(count), 1_000_000)):
        images, labels = directory / "images" / split, directory / "labels" / split
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for index in range(n):
            if check is not None:
                check()
            # One generator per image: content depends only on (split, index, size), not on order.
            rng = np.random.default_rng([SEED, offset + index, imgsz])
            pixels, boxes = draw_image(rng, imgsz)
            stem = f"{split}_{index:05d}"
            # JPEG: noise does not compress as PNG (5x larger); same encoder, same bytes.
            Image.fromarray(pixels).save(images / f"{stem}.jpg", quality=90)
            (labels / f"{stem}.txt").write_text("".join(
                f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for cls, cx, cy, w, h in boxes
            ))
    # No 'path:' key: Ultralytics then resolves train/val next to this file, so the
    # directory stays valid after the rename and when LAXAI_HOME moves.
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASS_NAMES))
    (directory / "data.yaml").write_text(
        f"# Synthetic detection dataset: {count} train / {val_count(count)} val images, {imgsz}px\n"
        f"train: images/train\nval: images/val\nnc: {len(CLASS_NAMES)}\nnames:\n{names}"
    )


def draw_image(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """A noisy background with 1-3 non-overlapping shapes; returns pixels and YOLO boxes."""
    base = rng.integers(60, 196, size=3, dtype=np.int16)
    noise = rng.integers(-30, 31, size=(size, size, 3), dtype=np.int16)
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    placed: list[tuple[int, int, int, int]] = []
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        for _try in range(20):  # find a free spot; skip the shape if the image is crowded
            w, h = (int(v) for v in rng.integers(max(8, size // 6), max(9, size // 2), size=2))
            x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            if all(x0 >= bx1 or x0 + w <= bx0 or y0 >= by1 or y0 + h <= by0 for bx0, by0, bx1, by1 in placed):
                break
        else:
            continue
        cls = int(rng.integers(0, len(CLASS_NAMES)))
        colour = np.clip(np.array(CLASS_COLOURS[cls]) + rng.integers(-25, 26, size=3), 0, 255).astype(np.uint8)
        yy, xx = np.mgrid[0:h, 0:w]  # only the shape's box, not the whole image
        pixels[y0:y0 + h, x0:x0 + w][shape_mask(cls, xx, yy, w, h)] = colour
        placed.append((x0, y0, x0 + w, y0 + h))
        boxes.append((cls, (x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size))
    return pixels, boxes


def shape_mask(cls: int, x: np.ndarray, y: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels of a rectangle, ellipse or triangle filling a w x h box (x, y relative to its corner)."""
    if cls == 0:
        return np.ones_like(x, dtype=bool)
    if cls == 1:
        return ((x + 0.5 - w / 2) / (w / 2)) ** 2 + ((y + 0.5 - h / 2) / (h / 2)) ** 2 <= 1.0
    # Upward triangle: apex at the top centre, base along the bottom edge.
    return np.abs(x + 0.5 - w / 2) <= (y + 1) / h * (w / 2)

"""Datasets: turn a JobSpec's ``dataset`` into the path of a YOLO data.yaml.

- ``synthetic`` / ``synthetic:N``: a generated, deterministic detection dataset of
  coloured shapes on noisy backgrounds, written once under
  ``$LAXAI_HOME/datasets/synthetic-<N>-<imgsz>/`` and reused.
- a path to a data.yaml, or a directory holding one: used as is.
- ``gs://bucket/path[/data.yaml]``: on the gcp backend, the prefix is copied to
  ``$LAXAI_HOME/datasets/gcs/`` (``worker.gcs_dataset``); locally it is refused with a
  clear message.

Every problem raises ``DatasetError`` with words a user can act on; the runner
fails the job with reason ``dataset_error``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from orchestrator.domain.spec import JobSpec

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


def resolve(spec: JobSpec, home: Path, check: Checkpoint | None = None, backend: str = "local",
            gcs_client: object = None) -> Path:
    """The data.yaml to train on (generating the synthetic dataset, or downloading a gs:// one, if needed)."""
    count = spec.synthetic_images()
    if count is not None:
        return synthetic(home / "datasets", count, spec.model_params.input_size, check)
    if spec.dataset.startswith("gs://") and backend == "gcp":
        from worker import gcs_dataset

        try:
            return gcs_dataset.download(spec.dataset, home / "datasets" / "gcs", gcs_client)
        except gcs_dataset.GcsDatasetError as exc:
            raise DatasetError(str(exc)) from None
    return local_dataset(spec.dataset, backend)


def local_dataset(dataset: str, backend: str = "local") -> Path:
    """A data.yaml path or a directory with one; gs:// and other URLs are refused."""
    if dataset.startswith("gs://"):
        raise DatasetError(
            f"{dataset}: gs:// datasets need the gcp backend (LAXAI_BACKEND=gcp); "
            "locally use 'synthetic', 'synthetic:N', a data.yaml path or a dataset directory"
        )
    if "://" in dataset:
        raise DatasetError(f"{dataset}: only local paths, 'synthetic' or gs:// URIs are supported")
    # Relative paths are taken from the worker's working directory, which the local launcher
    # inherits from the service that validated the path.
    path = Path(dataset).expanduser().resolve()
    if path.is_dir():
        found = next((path / name for name in DATA_YAML_NAMES if (path / name).is_file()), None)
        if found is None:
            raise DatasetError(f"dataset directory {path} has no data.yaml (expected {path / 'data.yaml'})")
        path = found
    elif not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    elif path.suffix not in (".yaml", ".yml"):
        raise DatasetError(f"{path} is not a data.yaml; pass a YOLO data.yaml or the directory holding it")
    return path


def check(data_yaml: Path) -> None:
    """Validate with Ultralytics' own checker, without any download (call after worker.offline.prepare)."""
    from ultralytics.data.utils import check_det_dataset

    try:
        check_det_dataset(str(data_yaml), autodownload=False)
    except Exception as exc:  # noqa: BLE001 - any failure here is the dataset's, reported to the user
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetError(f"dataset {data_yaml} is not usable: {text}") from exc


# -- synthetic ---------------------------------------------------------------


def synthetic(root: Path, count: int, imgsz: int, check: Checkpoint | None = None) -> Path:
    """Generate (once) and return the data.yaml of a synthetic dataset with ``count`` train images."""
    target = root / f"synthetic-{count}-{imgsz}"
    data_yaml = target / "data.yaml"
    if data_yaml.is_file():
        return data_yaml
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(root, target.name)
    # Build in a private temp dir and rename: the rename is atomic, so a concurrent worker either
    # sees the finished dataset or builds its own copy and discards it.
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}."))
    try:
        write_synthetic(staging, count, imgsz, check)
        try:
            os.rename(staging, target)
        except OSError:
            if not data_yaml.is_file():  # not a lost race: a real error
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return data_yaml


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

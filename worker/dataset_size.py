"""How many training images the attempt's dataset holds, recorded on the job for the estimates.

The estimate before launch (orchestrator/domain/estimate.py) works in seconds per image-epoch, so
it needs each completed job's image count. ``synthetic:N`` has N from the start (the service sets
it at submit); for a data.yaml the worker counts the images of its ``train`` entries once the
dataset is resolved and checked, and writes the count only when the job does not have it yet
(one write per job, none for synthetic datasets or a resumed attempt: the write budget is tight).
The count is best effort: a failure is logged and training goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.domain.transitions import record_dataset_images
from worker.prepare import Attempt

log = logging.getLogger(__name__)


def train_images(data_yaml: Path) -> int:
    """Images in the dataset's ``train`` entries: files with an image suffix under a directory, or lines
    of a .txt list (Ultralytics' two forms), as Ultralytics resolves the paths (no download)."""
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

    data = check_det_dataset(str(data_yaml), autodownload=False)
    entries = data.get("train")
    count = 0
    for entry in entries if isinstance(entries, list) else [entries]:
        path = Path(str(entry))
        if path.is_dir():
            count += sum(1 for f in path.rglob("*") if f.suffix.lower().lstrip(".") in IMG_FORMATS and f.is_file())
        elif path.suffix == ".txt" and path.is_file():
            count += sum(1 for line in path.read_text(errors="replace").splitlines() if line.strip())
    return count


def record(attempt: Attempt, data_yaml: Path) -> None:
    """Count the dataset's training images and store the count on the job when it is new."""
    ctx, job = attempt.ctx, attempt.job
    if job.dataset_images and job.spec.synthetic_images() == job.dataset_images:
        return  # synthetic:N: known since submit
    try:
        images = train_images(data_yaml)
        if images > 0 and images != job.dataset_images:
            ctx.store.update(ctx.task_id, lambda j: record_dataset_images(j, ctx.number, images), kind="dataset")
    except Exception:  # noqa: BLE001 - an estimate's input never fails a job
        log.warning("could not record the dataset's image count", exc_info=True)

"""Training curves: the epoch rows' rules (orchestrator/domain/epochs.py) and the PNG they draw
(orchestrator/curves.py), the thread's caption and the plan's ``curves`` step (bot/curves.py, bot/plan.py)."""

from __future__ import annotations

import io
import math
from datetime import timedelta

import pytest
from PIL import Image

from bot import curves as slack_curves
from bot import plan
from orchestrator.curves import NoEpochs, job_png, render
from orchestrator.domain.epochs import MAX_ROWS, EpochRow, attempt_starts, finite, merged, row_from, with_epochs
from orchestrator.domain.job import Attempt, EndReason, Job, utcnow
from tests.slack import jobflow


def rows(epochs: int, attempt_of=lambda e: 1) -> list[EpochRow]:
    return [EpochRow(epoch=e, attempt=attempt_of(e), box=2 / e + 0.5, cls=3 / e + 0.3, dfl=1.5 / e + 0.8,
                     val_box=2.2 / e + 0.6, val_cls=3.3 / e + 0.4, val_dfl=1.6 / e + 0.9,
                     map50=1 - math.exp(-e / 4), map50_95=0.6 * (1 - math.exp(-e / 4))) for e in range(1, epochs + 1)]


def image(png: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(png))
    picture.load()
    return picture


def pixel_spread(picture: Image.Image) -> float:
    """Standard deviation of the grey levels: 0 for a blank picture."""
    values = list(picture.convert("L").getdata())
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def with_attempts(job: Job, *ends: EndReason) -> Job:
    now = utcnow()
    attempts = [Attempt(number=i + 1, claimed_at=now - timedelta(minutes=10 - i), end_reason=end)
                for i, end in enumerate(ends)]
    return job.model_copy(update={"attempts": attempts})


# -- the rows ----------------------------------------------------------------------------


def test_a_row_takes_ultralytics_names_and_drops_what_is_not_finite():
    row = row_from(3, 2, {"train/box_loss": 1.2345678, "train/cls_loss": float("nan"), "val/dfl_loss": float("inf"),
                          "metrics/mAP50(B)": 0.5, "metrics/mAP50-95(B)": "0.25", "lr/pg0": 0.01})
    assert (row.epoch, row.attempt, row.box, row.map50, row.map50_95) == (3, 2, 1.23457, 0.5, 0.25)
    assert row.cls is None and row.val_dfl is None and row.val_box is None
    assert finite(None) is None and finite("x") is None and finite(-math.inf) is None


def test_a_job_with_rows_survives_json_even_after_a_nan():
    job = with_epochs(jobflow.make_job(), [row_from(1, 1, {"train/box_loss": float("nan"), "metrics/mAP50(B)": 0.1})])
    again = Job.model_validate_json(job.model_dump_json())
    assert again.epochs == job.epochs and again.epochs[0].box is None and again.epochs[0].map50 == 0.1


def test_a_resumed_epoch_replaces_its_row_and_rows_stay_sorted_and_bounded():
    first = rows(3)
    redone = EpochRow(epoch=3, attempt=2, map50=0.9)
    result = merged(first, [EpochRow(epoch=4, attempt=2), redone])
    assert [(r.epoch, r.attempt) for r in result] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert result[2].map50 == 0.9
    many = merged([], [EpochRow(epoch=e, attempt=1) for e in range(1, MAX_ROWS + 6)])
    assert len(many) == MAX_ROWS and many[-1].epoch == MAX_ROWS + 5
    job = jobflow.make_job()
    assert with_epochs(job, []) is job


def test_a_new_attempt_is_marked_continued_or_resumed_by_how_the_one_before_ended():
    job = jobflow.make_job(epochs=9).model_copy(update={"epochs": rows(9, lambda e: 1 if e <= 3 else 2 if e <= 6 else 4)})
    job = with_attempts(job, EndReason.CONTINUATION, EndReason.LEASE_EXPIRED, EndReason.LAUNCH_FAILED,
                        EndReason.COMPLETED)
    assert attempt_starts(job) == {2: "continued", 4: "resumed"}
    only_planned = with_attempts(job.model_copy(update={"epochs": rows(6, lambda e: 1 if e <= 3 else 2)}),
                                 EndReason.CONTINUATION, EndReason.COMPLETED)
    assert attempt_starts(only_planned) == {2: "continued"}


# -- the picture -------------------------------------------------------------------------


def test_the_png_is_small_not_blank_and_says_how_many_epochs_it_plots():
    png = render(rows(15, lambda e: 1 if e <= 5 else 2), {2: "continued"}, "demo · yolov8n")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < 200_000
    picture = image(png)
    assert picture.text["Epochs"] == "15" and picture.text["Attempts"] == "1,2"
    assert picture.size[0] >= 600 and pixel_spread(picture) > 20


def test_one_epoch_and_missing_values_still_draw():
    lone = [EpochRow(epoch=1, attempt=1, box=1.0)]  # no validation losses, no mAP
    picture = image(render(lone))
    assert picture.text["Epochs"] == "1" and pixel_spread(picture) > 5


def test_no_rows_no_picture():
    with pytest.raises(NoEpochs):
        render([])
    with pytest.raises(NoEpochs, match="no finished epoch"):
        job_png(jobflow.make_job())


def test_a_jobs_picture_marks_where_its_second_execution_began():
    job = jobflow.make_job(epochs=6, custom_name="curvy").model_copy(
        update={"epochs": rows(6, lambda e: 1 if e <= 3 else 2)})
    job = with_attempts(job, EndReason.INTERRUPTED, EndReason.COMPLETED)
    marked, plain = image(job_png(job)), image(render(job.epochs, {}, "curvy · yolo11n"))
    assert marked.text["Title"] == "curvy · yolo11n" and marked.text["Epochs"] == "6"
    assert list(marked.convert("L").getdata()) != list(plain.convert("L").getdata())  # the marker is drawn


# -- the thread ----------------------------------------------------------------------------


def test_the_curves_are_owed_after_the_final_reply_once_an_epoch_finished():
    done = jobflow.complete(jobflow.start(jobflow.make_job(epochs=2)))
    assert "curves" not in [s.key for s in plan.due(done)]  # no epoch rows: nothing to draw
    done = done.model_copy(update={"epochs": rows(2)})
    keys = [s.key for s in plan.due(done)]
    assert keys[-1] == "curves" and keys.index("final") < keys.index("curves")
    posted = done.model_copy(update={"notify": {"posted": {"card": "1.0", "final": "1.1"}}})
    assert [s.key for s in plan.due(posted)] == ["curves"]
    for settled in ({"posted": {"card": "1.0", "final": "1.1", "curves": "F1"}},
                    {"posted": {"card": "1.0", "final": "1.1"}, "gave_up": {"curves": "missing_scope"}}):
        assert plan.due(done.model_copy(update={"notify": settled})) == []
    running = jobflow.progress(jobflow.start(jobflow.make_job(epochs=4)), epoch=2).model_copy(
        update={"epochs": rows(2)})
    assert "curves" not in [s.key for s in plan.due(running)]  # only once the job has ended


def test_the_caption_counts_epochs_and_names_where_the_run_resumed():
    job = jobflow.make_job(epochs=6, custom_name="<!here> run").model_copy(
        update={"epochs": rows(6, lambda e: 1 if e <= 4 else 2)})
    job = with_attempts(job, EndReason.INTERRUPTED, EndReason.COMPLETED)
    caption = plan.render(job, "curves")
    assert "6 epochs" in caption.text and "resumed at epoch 5" in caption.text
    assert "<!here>" not in caption.text and "&lt;!here&gt;" in caption.text
    assert slack_curves.filename(job.task_id) == f"laxai-curves-{job.task_id}.png"
    assert "6 epochs" in slack_curves.alt_text(job) and len(slack_curves.alt_text(job)) <= 1000

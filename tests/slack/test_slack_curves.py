"""The training curves in a finished job's thread: the real notifier against the fake Slack's upload flow.

Jobs move with the real transitions on a real store (jobflow), their epoch rows stored as the
worker's progress writes store them (orchestrator/domain/epochs.py); every test runs on both
backends. The picture goes up with files.getUploadURLExternal, the upload URL and
files.completeUploadExternal (bot/notifier/uploads.py), after the final reply, once.
"""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from orchestrator.domain.epochs import EpochRow, with_epochs
from orchestrator.domain.job import EndReason
from tests.slack import jobflow
from tests.slack.slack_env import CHANNEL
from tests.slack.test_slack_notifier import Rig  # the notifier's rig: a store, the fake Slack, a notifier


@pytest.fixture
def rig(tmp_path, fake_slack, use_backend):
    rig = Rig(tmp_path, fake_slack)
    yield rig
    rig.close()


def epochs_done(rig: Rig, job, first: int, last: int):
    """Epochs ``first``..``last`` finished by the job's current attempt, as its progress writes store them."""
    number = job.current_attempt.number
    rows = [EpochRow(epoch=e, attempt=number, box=1.5 / e, cls=2.5 / e, dfl=1.2 / e, val_box=1.7 / e,
                     val_cls=2.7 / e, val_dfl=1.3 / e, map50=1 - math.exp(-e), map50_95=0.5 * (1 - math.exp(-e)))
            for e in range(first, last + 1)]
    job = jobflow.progress(job, rig.store, epoch=last)
    return rig.store.update(job.task_id, lambda j: with_epochs(j, rows), kind="progress")


def finished_after_a_resume(rig: Rig):
    """A 3-epoch job: epoch 1 in attempt 1, interrupted, epochs 2-3 in attempt 2, completed."""
    job = epochs_done(rig, jobflow.start(rig.job(epochs=3, custom_name="curvy"), rig.store), 1, 1)
    job = jobflow.start(jobflow.interrupt(job, rig.store), rig.store, start_epoch=1)
    return jobflow.complete(epochs_done(rig, job, 2, 3), rig.store)


def picture(upload: dict) -> Image.Image:
    image = Image.open(io.BytesIO(upload["data"]))
    image.load()
    return image


def test_a_finished_job_gets_its_curves_in_its_thread_after_the_final_reply(rig):
    rig.start()
    job = finished_after_a_resume(rig)
    final = rig.wait_posted(job, "final")[0]
    file_id = rig.wait_recorded(job, "curves")
    card = rig.wait_posted(job, "card")[0]
    (upload,) = rig.fake.shared_files(CHANNEL, card["ts"])
    assert upload["id"] == file_id and upload["filename"] == f"laxai-curves-{job.task_id}.png"
    image = picture(upload)
    assert image.format == "PNG" and len(upload["data"]) < 200_000
    assert image.text["Epochs"] == "3" and image.text["Attempts"] == "1,2"
    assert "3 epochs" in upload["comment"] and "resumed at epoch 2" in upload["comment"]
    thread = rig.fake.thread(CHANNEL, card["ts"])
    order = [m["ts"] for m in thread]
    assert order.index(final["ts"]) < order.index(upload["message_ts"])  # the final word first
    (asked,) = rig.fake.calls_to("files.getUploadURLExternal", ok=True)
    assert int(asked.args["length"]) == len(upload["data"])
    rig.idle()
    assert len(rig.fake.shared_files()) == 1


def test_a_refused_upload_is_given_up_at_once_and_the_final_reply_stands(rig):
    rig.fake.fail(status=200, methods="files.getUploadURLExternal", error="missing_scope")  # no files:write
    rig.start()
    job = finished_after_a_resume(rig)
    rig.wait_posted(job, "final")
    rig.fake.wait_for(lambda: "curves" in (rig.notify(job).get("gave_up") or {}), what="curves given up")
    rig.idle()
    assert len(rig.fake.calls_to("files.getUploadURLExternal")) == 1 and rig.fake.shared_files() == []


def test_a_share_whose_answer_was_lost_is_found_in_the_thread_not_shared_twice(rig):
    rig.fake.fail(500, methods="files.completeUploadExternal", times=1, after_work=True)  # shared, then a 500
    rig.start()
    job = finished_after_a_resume(rig)
    file_id = rig.wait_recorded(job, "curves", timeout=40)
    rig.idle()
    (shared,) = rig.fake.shared_files()
    assert file_id == shared["message_ts"]  # recorded as found: the ts of the message that shares it
    assert len(rig.fake.calls_to("files.completeUploadExternal")) == 1
    assert rig.fake.calls_to("conversations.replies", ok=True)  # it looked before sharing again


def test_a_job_cancelled_before_any_epoch_gets_no_picture(rig):
    rig.start()
    job = jobflow.cancel(jobflow.start(rig.job(epochs=3), rig.store), rig.store)
    assert job.epochs == [] and job.current_attempt.end_reason is EndReason.CANCELLED
    rig.wait_posted(job, "final")
    rig.idle()
    assert rig.fake.calls_to("files.getUploadURLExternal") == []

"""plan.due: what a job's thread still needs, from its state and what was posted (pure)."""

from __future__ import annotations

from bot import plan
from bot.plan import FINAL, LIFECYCLE, Step
from orchestrator.domain.job import EndReason

from tests.slack import jobflow


def posted(job, *keys):
    return job.model_copy(update={"notify": {**job.notify, "posted": {k: "1.0" for k in keys}}})


def keys(job):
    return [s.key for s in plan.due(job)]


def test_a_new_job_needs_its_card_first():
    job = jobflow.make_job()
    assert plan.due(job) == [Step("card", LIFECYCLE)]


def test_started_then_milestones_in_thread_order():
    job = jobflow.start(jobflow.make_job(epochs=4))
    assert keys(job) == ["card", "started"]
    job = posted(job, "card")
    assert keys(job) == ["started"]
    job = posted(jobflow.progress(job, epoch=1), "card", "started")
    assert keys(job) == ["milestone:25"]


def test_only_the_latest_crossed_milestone_is_owed():
    job = posted(jobflow.progress(jobflow.start(jobflow.make_job(epochs=4)), epoch=3), "card", "started")
    assert keys(job) == ["milestone:75"]  # 25 and 50 were never seen: dropped, not posted late
    assert keys(posted(job, "card", "started", "milestone:75")) == []
    assert keys(posted(jobflow.progress(job, epoch=2), "card", "started", "milestone:75")) == []


def test_a_finished_job_owes_only_card_and_final_reply_at_top_priority():
    job = jobflow.complete(jobflow.progress(jobflow.start(jobflow.make_job()), epoch=2))
    assert plan.due(job) == [Step("card", FINAL), Step("final", FINAL)]
    assert keys(posted(job, "card", "final")) == []


def test_a_resumed_attempt_is_announced_once():
    job = jobflow.progress(jobflow.start(jobflow.make_job(epochs=10)), epoch=3)
    job = posted(jobflow.interrupt(job), "card", "started", "milestone:25")
    assert keys(job) == []  # waiting in the queue: the card says so
    job = jobflow.start(job, start_epoch=3)
    assert keys(job) == ["resumed:2"]
    assert keys(posted(job, "card", "started", "milestone:25", "resumed:2")) == []


def test_given_up_keys_and_a_given_up_card_silence_the_thread():
    job = jobflow.complete(jobflow.start(jobflow.make_job()))
    job = job.model_copy(update={"notify": {"posted": {"card": "1.0"}, "gave_up": {"final": "why"}}})
    assert keys(job) == []
    job = job.model_copy(update={"notify": {"gave_up": {"card": "no channel"}}})
    assert keys(job) == []


def test_render_every_key():
    job = jobflow.start(jobflow.interrupt(jobflow.progress(jobflow.start(jobflow.make_job(epochs=4)), epoch=1),
                                          reason=EndReason.LEASE_EXPIRED), start_epoch=1)
    for key in ("card", "started", "milestone:50", "resumed:2"):
        assert plan.render(job, key).blocks
    assert "Worker lost" in plan.render(job, "resumed:2").text
    assert plan.render(jobflow.complete(job), "final").blocks


def test_finished_with_needs_the_final_card_pushed():
    job = posted(jobflow.complete(jobflow.start(jobflow.make_job())), "card", "final")
    assert not plan.finished_with(job, None, "nvidia-l4")
    digest = plan.card_hash(job, "nvidia-l4")
    assert plan.finished_with(job, digest, "nvidia-l4")
    stored = job.model_copy(update={"notify": {**job.notify, "card_done": digest}})
    assert plan.finished_with(stored, None, "nvidia-l4")

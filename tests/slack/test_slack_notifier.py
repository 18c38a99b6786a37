"""The notifier against the fake Slack: threads, exactly-once replies, pacing and faults.

Jobs move through their lifecycle with the real transitions on a real store
(jobflow), so the notifier sees the change feed as in production, minus the
training. Every test runs on both backends (``use_backend``): ``[local]`` (SQLite,
polled feed) and ``[gcp]`` (Firestore emulator, on_snapshot feed).
"""

from __future__ import annotations

import json
import time

import pytest

from bot import plan
from bot.clients import notifier_client
from bot.config import SlackSettings
from bot.notifier import METADATA_TYPE, Notifier
from bot.threads import open_threads
from orchestrator.config import load_settings
from orchestrator.domain.job import EndReason, Origin
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import set_notify
from orchestrator.serve import create_runtime
from orchestrator.stores.base import ChangeEvent
from tests.fakes.fake_slack import FakeSlack

from tests.slack import jobflow
from tests.slack.pacing import PUBLISHED, Recorder
from tests.slack.slack_env import BOT_TOKEN, CHANNEL, SIGNING_SECRET, TEAM


class Rig:
    """A store, a fake Slack and a notifier between them (restartable)."""

    def __init__(self, tmp_path, fake: FakeSlack, **settings):
        self.fake = fake
        self.runtime = create_runtime(load_settings(LAXAI_HOME=tmp_path / "home"), dispatch=False)
        self.store = self.runtime.backend.store
        self.threads = open_threads(self.runtime)  # the Slack ledger's own record (slack_threads)
        self.settings = SlackSettings(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                                      SLACK_API_URL=fake.url, **{"SLACK_POST_INTERVAL": 1.05,
                                                                 "SLACK_CARD_MIN_INTERVAL": 0.3, **settings})
        self.notifier: Notifier | None = None
        self._marker = self._probe = None
        self._marker_seen: list[int] = []
        self._marks = 0

    def start(self, owner: str = "test-host") -> Notifier:
        self.notifier = Notifier(self.runtime, self.settings, notifier_client(self.settings), owner=owner,
                                 threads=self.threads)
        self.notifier.start()
        return self.notifier

    def stop(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None

    def restart(self, owner: str = "test-host") -> Notifier:
        self.stop()
        return self.start(owner)

    def job(self, **kwargs):
        job = jobflow.make_job(**kwargs)
        created, _ = self.store.create(job)
        return created

    def get(self, job):
        return self.store.get(job.task_id)

    def notify(self, job) -> dict:
        """What the ledger holds for ``job`` (its slack_threads record), in the old ``job.notify`` shape."""
        record = self.threads.get(job.task_id)
        return record.as_notify() if record is not None else dict(self.get(job).notify)

    def view(self, job):
        """The stored job with its Slack record overlaid, as the notifier's plan sees it."""
        return self.get(job).model_copy(update={"notify": self.notify(job)})

    def posts(self, job, key=None):
        return self.fake.by_metadata(job.task_id, key)

    def wait_posted(self, job, key, timeout=20.0):
        return self.fake.wait_for(lambda: self.posts(job, key), timeout=timeout, what=f"{key} of {job.task_id[:8]}")

    def wait_recorded(self, job, key, timeout=20.0):
        return self.fake.wait_for(lambda: (self.notify(job).get("posted") or {}).get(key), timeout=timeout,
                                  what=f"{key} recorded")

    def idle(self, timeout=30.0):
        self.caught_up()
        assert self.notifier.wait_idle(timeout), "the notifier did not settle"

    def caught_up(self, timeout=15.0) -> None:
        """Every change stored so far has reached the runtime's listeners (the notifier).

        A marker job (not from Slack: the notifier ignores it) is changed now and its
        change awaited on the feed: both feeds deliver in commit order (SQLite's event
        log; Firestore's snapshots, each a consistent point in time), so whatever was
        stored before it has been delivered by then, whatever the feed's latency.
        """
        if self._marker is None:
            self._marker, _ = self.store.create(jobflow.make_job(origin=Origin(source="api", user="probe")))
            self._probe = self.runtime.on_change(
                lambda event: self._marker_seen.append(event.job.version)
                if event.task_id == self._marker.task_id else None)
        self._marks += 1
        marked = self.store.update(self._marker.task_id, lambda j: set_notify(j, {"mark": self._marks}), kind="probe")
        self.fake.wait_for(lambda: max(self._marker_seen, default=0) >= marked.version, timeout=timeout,
                           what="the change feed to catch up")

    def close(self) -> None:
        self.stop()
        if self._probe is not None:
            self._probe.stop()
        self.runtime.close_feed()
        self.threads.close()
        self.runtime.backend.close()


@pytest.fixture
def rig(tmp_path, fake_slack, use_backend):
    rig = Rig(tmp_path, fake_slack)
    yield rig
    rig.close()


def keys_posted(rig, job):
    return sorted((m.get("metadata") or {})["event_payload"]["key"] for m in rig.posts(job))


def assert_once_each(rig, job):
    keys = keys_posted(rig, job)
    assert len(keys) == len(set(keys)), f"posted twice: {keys}"


def test_a_job_gets_its_card_and_thread_in_order(rig):
    recorder = Recorder(rig.fake)
    rig.start()
    job = rig.job(epochs=4, custom_name="lifecycle")
    card = rig.wait_posted(job, "card")[0]
    assert card["thread_ts"] is None and card["channel"] == CHANNEL
    assert card["metadata"] == {"event_type": METADATA_TYPE, "event_payload": {"task_id": job.task_id, "key": "card"}}
    rig.wait_recorded(job, "card")
    assert rig.notify(job)["card_ts"] == card["ts"] and rig.notify(job)["thread_ts"] == card["ts"]

    job = jobflow.start(rig.get(job), rig.store)
    rig.wait_posted(job, "started")
    for epoch, percent in ((1, 25), (2, 50), (3, 75)):
        job = jobflow.progress(rig.get(job), rig.store, epoch=epoch, metrics={"mAP50-95": 0.1 * epoch})
        rig.wait_posted(job, f"milestone:{percent}")
    jobflow.complete(rig.get(job), rig.store)
    rig.wait_posted(job, "final")
    rig.idle()

    thread = rig.fake.thread(CHANNEL, card["ts"])
    assert [m["metadata"]["event_payload"]["key"] for m in thread] == [
        "card", "started", "milestone:25", "milestone:50", "milestone:75", "final"]
    assert all(m["thread_ts"] == card["ts"] for m in thread[1:])
    assert "best mAP50-95 so far 0.300" in thread[4]["text"] or "0.300" in json.dumps(thread[4]["blocks"])
    final_card = rig.fake.message(CHANNEL, card["ts"])
    assert ":white_check_mark: *Completed*" in json.dumps(final_card["blocks"])
    assert final_card["edits"] >= 1
    assert rig.notify(job).get("card_done")
    assert_once_each(rig, job)
    # Every message went out within Slack's pace for one channel, no burst even; no call was refused.
    posts = [c.mono for c in rig.fake.calls_to("chat.postMessage", ok=True)]
    assert all(b - a >= 1.0 for a, b in zip(posts, posts[1:]))
    recorder.assert_paced(at_least_posts=6)


def test_a_finished_job_gets_card_and_final_only(rig):
    job = rig.job()
    jobflow.complete(jobflow.progress(jobflow.start(job, rig.store), rig.store, epoch=2), rig.store)
    rig.start()  # it all happened while the notifier was away
    rig.wait_posted(job, "final")
    rig.idle()
    assert keys_posted(rig, job) == ["card", "final"]


def test_interrupted_then_resumed_is_told_once(rig):
    rig.start()
    job = rig.job(epochs=10)
    job = jobflow.progress(jobflow.start(job, rig.store), rig.store, epoch=3, percent=30)
    rig.wait_posted(job, "milestone:25")
    job = jobflow.interrupt(rig.get(job), rig.store, lost_seconds=42)
    rig.idle()
    assert "waiting to resume" in json.dumps(rig.fake.message(CHANNEL, rig.posts(job, "card")[0]["ts"])["blocks"])
    jobflow.start(rig.get(job), rig.store, start_epoch=3)
    (resumed,) = rig.wait_posted(job, "resumed:2")
    assert "Interrupted* at epoch 3/10" in resumed["text"] + json.dumps(resumed["blocks"])
    assert "lost 42s" in json.dumps(resumed["blocks"])
    rig.idle()
    assert_once_each(rig, job)


def test_restarts_and_repeated_events_post_nothing_twice(rig):
    rig.start()
    job = rig.job(epochs=4)
    job = jobflow.progress(jobflow.start(job, rig.store), rig.store, epoch=1)
    rig.wait_posted(job, "milestone:25")
    rig.idle()
    before = len(rig.fake.calls_to("chat.postMessage"))

    notifier = rig.restart(owner="another-host")  # a new process, even on another machine
    for _ in range(3):
        notifier.reconcile(rig.get(job))  # duplicate deliveries of the same state
        notifier.reconcile(job.task_id)
    rig.idle()
    time.sleep(0.5)
    assert len(rig.fake.calls_to("chat.postMessage")) == before

    jobflow.progress(rig.get(job), rig.store, epoch=2)  # news after the restart is still posted
    rig.wait_posted(job, "milestone:50")
    rig.stop()
    jobflow.complete(rig.get(job), rig.store)
    rig.start()
    rig.wait_posted(job, "final")
    rig.idle()
    rig.restart()
    rig.idle()
    time.sleep(0.5)
    assert keys_posted(rig, job) == ["card", "final", "milestone:25", "milestone:50", "started"]
    assert_once_each(rig, job)


def test_a_coalesced_change_that_ends_with_another_notifiers_write_is_not_dropped(rig):
    """Feeds may coalesce versions (Firestore snapshots do): one event can carry a worker's change
    and, after it, another notifier's bookkeeping, and be labelled by the last ("notify"). The
    notifier must still see the worker's change in it."""
    rig.start()
    job = rig.job(epochs=4)
    rig.wait_recorded(job, "card")
    rig.idle()
    rig.runtime.close_feed()  # the store's feed pauses (the notifier stays subscribed)...
    jobflow.start(rig.get(job), rig.store)  # ...while the job starts,
    rig.store.update(job.task_id, lambda j: set_notify(j, {"seen_by": "another-host"}), kind="notify")
    latest = rig.get(job)  # and another notifier writes after it:
    rig.runtime.publish_change(ChangeEvent(None, latest, "notify"))  # one event for both
    rig.wait_posted(job, "started", timeout=10)
    assert rig.notifier.wait_idle(10)  # (rig.idle() would wait on the paused feed)
    assert keys_posted(rig, job) == ["card", "started"]


def test_a_crash_between_post_and_record_is_repaired_from_message_metadata(rig):
    """The previous process posted 'started' and died before recording it: the intent is
    stored, the message is in Slack, the record says nothing. No second 'started'."""
    from slack_sdk import WebClient

    job = jobflow.start(rig.job(epochs=4), rig.store)
    slack = WebClient(token=BOT_TOKEN, base_url=rig.fake.url)
    card_ts = slack.chat_postMessage(channel=CHANNEL, text="card", metadata={
        "event_type": METADATA_TYPE, "event_payload": {"task_id": job.task_id, "key": "card"}})["ts"]
    started_ts = slack.chat_postMessage(channel=CHANNEL, text="started", thread_ts=card_ts, metadata={
        "event_type": METADATA_TYPE, "event_payload": {"task_id": job.task_id, "key": "started"}})["ts"]
    rig.store.update(job.task_id, lambda j: set_notify(j, {
        "card_ts": card_ts, "card_channel": CHANNEL, "thread_ts": card_ts, "posted": {"card": card_ts},
        "pending": {"started": {"owner": "dead-host", "at": time.time() - 600}}}), kind="notify")
    rig.fake.calls.clear()

    rig.start()
    rig.wait_recorded(job, "started")
    rig.idle()
    assert rig.notify(job)["posted"]["started"] == started_ts
    assert rig.fake.calls_to("chat.postMessage") == []
    assert rig.fake.calls_to("conversations.replies")  # it looked before posting


def test_a_fresh_intent_of_another_live_notifier_is_respected(rig):
    job = jobflow.start(rig.job(epochs=4), rig.store)
    rig.store.update(job.task_id, lambda j: set_notify(j, {
        "pending": {"card": {"owner": "busy-host", "at": time.time()}}}), kind="notify")
    rig.start()
    time.sleep(2.0)
    assert rig.posts(job) == []  # the other one is posting it right now


def test_server_errors_are_retried_and_the_reply_lands_once(rig):
    rig.start()
    job = jobflow.start(rig.job(), rig.store)
    rig.wait_posted(job, "started")
    rig.idle()
    rig.fake.fail(500, methods="chat.postMessage", times=2)
    done = jobflow.complete(rig.get(job), rig.store)
    rig.wait_posted(job, "final", timeout=30)
    rig.idle()
    assert len(rig.posts(job, "final")) == 1
    assert rig.fake.calls_to("conversations.replies")  # a 500 may have posted: it checked first
    assert rig.get(job).status is JobStatus.COMPLETED and done.status is JobStatus.COMPLETED


def test_a_post_that_timed_out_but_landed_is_not_posted_again(tmp_path, fake_slack, use_backend):
    rig = Rig(tmp_path, fake_slack, SLACK_HTTP_TIMEOUT=0.5)
    try:
        rig.start()
        job = jobflow.start(rig.job(), rig.store)
        rig.wait_posted(job, "started")
        rig.idle()
        rig.fake.fail(200, methods="chat.postMessage", times=1, delay=1.5)  # it posts, then answers too late
        jobflow.complete(rig.get(job), rig.store)
        rig.wait_recorded(job, "final", timeout=30)
        rig.idle()
        assert len(rig.posts(job, "final")) == 1
    finally:
        rig.close()


def test_429_retry_after_is_honoured(rig):
    rig.start()
    job = jobflow.start(rig.job(), rig.store)
    rig.wait_posted(job, "started")
    rig.idle()
    rig.fake.fail(429, methods="chat.postMessage", times=1, retry_after=3)
    jobflow.complete(rig.get(job), rig.store)
    rig.wait_posted(job, "final", timeout=30)
    limited = [c for c in rig.fake.calls_to("chat.postMessage") if c.status == 429]
    delivered = rig.fake.calls_to("chat.postMessage", ok=True)[-1]
    assert len(limited) == 1 and delivered.mono - limited[0].mono >= 3.0
    assert len(rig.posts(job, "final")) == 1


def test_slack_refusing_the_blocks_falls_back_to_text(rig):
    rig.start()
    job = rig.job()
    rig.fake.fail(200, methods="chat.postMessage", times=1, error="invalid_blocks")
    (card,) = rig.wait_posted(job, "card")
    assert card["blocks"] is None and card["text"]


def test_a_final_reply_is_given_up_after_the_bound_and_the_job_is_untouched(tmp_path, fake_slack, caplog,
                                                                          use_backend):
    rig = Rig(tmp_path, fake_slack, SLACK_FINAL_GIVE_UP=3)
    try:
        rig.start()
        job = jobflow.start(rig.job(), rig.store)
        rig.wait_posted(job, "started")
        rig.idle()
        rig.fake.fail(500, methods="chat.postMessage", seconds=60)
        jobflow.complete(rig.get(job), rig.store)
        rig.fake.wait_for(lambda: (rig.notify(job).get("gave_up") or {}).get("final"), timeout=40,
                          what="giving up")
        assert "giving up on final" in caplog.text
        assert rig.get(job).status is JobStatus.COMPLETED
        rig.fake.heal()
        rig.restart()
        rig.idle()
        assert rig.posts(job, "final") == []  # given up stays given up across restarts
    finally:
        rig.close()


def test_twenty_jobs_in_one_channel_are_paced_and_every_final_lands_once(tmp_path, use_backend):
    # Slack's pace scaled up 4x so the test is quick: the fake allows 4 posts/s per channel
    # (no burst) and 50 edits a minute; the notifier is set just under both.
    with FakeSlack(token=BOT_TOKEN, team_id=TEAM, post_rate=4.0, post_burst=1, update_per_minute=50,
                   update_burst=5) as fake:
        rig = Rig(tmp_path, fake, SLACK_POST_INTERVAL=0.27, SLACK_UPDATES_PER_MINUTE=45)
        # Judged by Slack's published limits (posts 4x faster, like the fake), not by the fake's numbers.
        recorder = Recorder(fake, PUBLISHED.faster_posts(4.0))
        try:
            rig.start()
            jobs = [rig.job(epochs=2, custom_name=f"job {i}") for i in range(20)]
            # The first card goes up while its job is queued, so at least it must be edited later.
            fake.wait_for(lambda: rig.posts(jobs[0], "card"), timeout=30, what="the first card")
            for job in jobs:
                jobflow.start(rig.get(job), rig.store)
            for job in jobs:
                jobflow.progress(rig.get(job), rig.store, epoch=1)
            for job in jobs:
                jobflow.complete(rig.get(job), rig.store)
            fake.wait_for(lambda: all(rig.posts(j, "final") for j in jobs), timeout=120, what="20 final replies")
            rig.idle(60)
            for job in jobs:
                assert_once_each(rig, job)
            posts = fake.calls_to("chat.postMessage")
            assert not [c for c in posts if c.status == 429], "the pacer should keep under the channel limit"
            ok = [c.mono for c in posts if c.ok]
            assert all(b - a >= 0.25 for a, b in zip(ok, ok[1:]))
            assert len(recorder.calls("chat.update")) >= 1  # the premise: cards were edited
            recorder.assert_paced(at_least_posts=2 * len(jobs))  # and 0 x 429 on chat.update too
            # Every card shows its final state in the end.
            for job in jobs:
                card = fake.message(CHANNEL, rig.notify(job)["card_ts"])
                assert "Completed" in json.dumps(card["blocks"]), card["text"]
        finally:
            rig.close()


def test_final_replies_go_before_news_and_news_before_card_edits(rig):
    """The scheduler's order when everything is due at once."""
    notifier = rig.start()
    rig.stop()  # keep its state, stop its thread: _pick is asked directly below
    notifier._sending = True  # stopping gave up the sending lease: follow jobs all the same
    edit = jobflow.progress(jobflow.start(rig.job(custom_name="edit"), rig.store), rig.store, epoch=1)
    news = jobflow.progress(jobflow.start(rig.job(custom_name="news"), rig.store), rig.store, epoch=1)
    final = jobflow.complete(jobflow.start(rig.job(custom_name="final"), rig.store), rig.store)
    posted = {"card": "1.000001", "started": "1.000002", "milestone:25": "1.000003"}
    for job in (edit, news, final):
        rig.store.update(job.task_id, lambda j: set_notify(j, {"card_ts": "1.000001", "card_channel": CHANNEL,
                                                                "posted": posted}), kind="notify")
    rig.store.update(news.task_id, lambda j: set_notify(j, {"posted": {"card": "1", "started": "2"}}), kind="notify")
    for job in (edit, news, final):
        notifier._observe(rig.get(job))
    order = []
    for _ in range(3):
        with notifier._cond:
            track, work, _wait = notifier._pick()
        order.append((track.job.spec.custom_name, work.kind, work.key))
        notifier._tracks.pop(track.job.task_id)
    assert order == [("final", "post", "final"), ("news", "post", "milestone:25"), ("edit", "update", "card")]


def test_the_scan_skips_jobs_that_need_nothing(rig):
    job = jobflow.complete(jobflow.start(rig.job(), rig.store), rig.store)
    rig.start()
    rig.wait_posted(job, "final")
    rig.idle()
    rig.restart()
    assert rig.notifier._tracks == {}  # finished, posted, final card stored: not even looked at
    assert plan.finished_with(rig.view(job), None, "nvidia-l4")


def test_launch_failures_resume_quietly_until_the_next_attempt_starts(rig):
    rig.start()
    job = jobflow.start(rig.job(epochs=4), rig.store)
    rig.wait_posted(job, "started")
    job = jobflow.interrupt(rig.get(job), rig.store, reason=EndReason.LAUNCH_FAILED, lost_seconds=0)
    rig.idle()
    assert keys_posted(rig, job) == ["card", "started"]


def test_the_notifier_never_writes_the_job_document(rig):
    """The ledger has its own record (slack_threads): a whole Slack job, card to final reply with
    edits in between, changes the job document only through the job's own transitions."""
    kinds: list[str] = []
    watch = rig.runtime.on_change(lambda event: kinds.append(event.kind) if event.job.origin.source == "slack" else None)
    try:
        rig.start()
        job = rig.job(epochs=4)
        rig.wait_recorded(job, "card")
        job = jobflow.start(rig.get(job), rig.store)
        rig.wait_posted(job, "started")
        job = jobflow.progress(rig.get(job), rig.store, epoch=2)
        rig.wait_posted(job, "milestone:50")
        done = jobflow.complete(rig.get(job), rig.store)
        rig.wait_recorded(job, "final")
        rig.idle()
    finally:
        watch.stop()
    record = rig.threads.get(job.task_id)
    assert set(record.posted) == {"card", "started", "milestone:50", "final"}
    assert record.card_done and record.version >= 5  # the ledger's writes went to its own record...
    assert rig.get(job).version == done.version and rig.get(job).notify == {}  # ...none to the job's
    assert "notify" not in kinds and kinds, kinds


def test_only_the_lease_holder_sends_and_another_takes_over_when_it_stops(rig):
    """Two notifiers on one store (two service instances): one sends, the other waits; when the
    sender stops, the other takes the lease, scans, and finishes the thread without repeating it."""
    first = rig.start(owner="instance-a")
    second = Notifier(rig.runtime, rig.settings, notifier_client(rig.settings), owner="instance-b",
                      threads=rig.threads)
    second.start()
    try:
        job = jobflow.start(rig.job(epochs=2), rig.store)
        rig.wait_posted(job, "started")
        rig.idle()
        assert first.sent > 0 and second.sent == 0  # the second instance waits: Slack sees one sender
        assert (first.lease.held()[0], second.lease.held()[0]) == (True, False)
        rig.stop()  # the sender stops (a scale-in, a deploy): it hands the lease over
        jobflow.complete(rig.get(job), rig.store)
        rig.wait_posted(job, "final", timeout=30)
        assert second.sent > 0
        assert_once_each(rig, job)
    finally:
        second.stop()


def test_a_pick_looks_only_at_the_jobs_that_changed_or_whose_wait_is_over(rig, monkeypatch):
    """Thirty queued jobs wait for their cards behind the channel's pace: a pick after one of them
    changes works out that one job's candidates, not thirty (bot/notifier/loop.py ``_due``)."""
    from bot.notifier import work as loop_work

    notifier = rig.start()
    rig.stop()  # keep its state, stop its thread: _pick is asked directly below
    notifier._sending = True
    jobs = [rig.job(custom_name=f"q{i}") for i in range(30)]
    for job in jobs:
        notifier._observe(rig.get(job))
    looked = []
    real = loop_work.candidates
    monkeypatch.setattr(loop_work, "candidates",
                        lambda track, *a: looked.append(track.job.task_id) or real(track, *a))
    notifier.pacer.posted(CHANNEL)  # a card just went out: the channel's next post is SLACK_POST_INTERVAL away
    with notifier._cond:
        track, work, wait = notifier._pick()
    assert work is None and 0.5 < wait <= 1.05  # the premise: all thirty owe a card and wait for the pace
    assert len(looked) == 30  # each looked at once, its wait noted
    looked.clear()
    with notifier._cond:
        notifier._pick()
    assert looked == []  # nothing changed, no wait is over: nobody looked at
    changed = rig.store.update(jobs[7].task_id, lambda j: j.model_copy(
        update={"progress": j.progress.model_copy(update={"message": "Queued, moved"})}), kind="progress")
    assert changed is not None and changed.version > jobs[7].version
    notifier._observe(changed)
    with notifier._cond:
        notifier._pick()
    assert looked == [jobs[7].task_id]  # only the one that changed

"""Slack pacing against Slack's published limits, and no double post after an ambiguous failure.

The recorder (tests/slack/pacing.py) checks every Web API call against what Slack
documents, not what the fake enforces; its own tests below show it passing paced
calls and catching unpaced ones on a fake that enforces nothing. The app's tests run
the real service in-process (signed /train requests, the notifier installed by the
real extension), on both backends, with jobs moved through their lifecycle by the
real transitions (tests/slack/jobflow.py).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.fake_slack import FakeSlack
from tests.slack import jobflow
from tests.slack.pacing import PUBLISHED, Recorder, post_violations, rate_limited, update_violations
from tests.slack.slack_env import BOT_TOKEN, CHANNEL, TEAM

JOBS = 8
EPOCHS = 100
PROGRESS_STEPS = 16  # under 25% of EPOCHS: no milestone post, a card edit wanted at each


def lenient_fake() -> FakeSlack:
    """A fake that lets anything through: what the recorder says cannot come from the fake."""
    return FakeSlack(token=BOT_TOKEN, team_id=TEAM, post_rate=1000, post_burst=1000, update_per_minute=100_000,
                     update_burst=1000)


@pytest.fixture
def fake_slack(request):
    """The usual fake (Slack-like limits), or with ``indirect`` param "lenient" one that enforces none."""
    lenient = getattr(request, "param", "strict") == "lenient"
    with lenient_fake() if lenient else FakeSlack(token=BOT_TOKEN, team_id=TEAM) as fake:
        yield fake


def client_of(fake: FakeSlack, timeout: float = 5.0) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.url, timeout=timeout, retry_handlers=[])


# -- the recorder itself ------------------------------------------------------------


def test_the_recorder_passes_slacks_pace_and_catches_what_the_fake_lets_through():
    with lenient_fake() as fake:
        client = client_of(fake)
        recorder = Recorder(fake)
        for i in range(3):  # one a second per channel: within the published limit
            client.chat_postMessage(channel="C1", text=f"paced {i}")
            client.chat_postMessage(channel="C2", text=f"paced {i}")  # another channel has its own pace
            time.sleep(1.02)
        assert recorder.violations() == []
        recorder.assert_paced(at_least_posts=6)

        burst = Recorder(fake)
        for i in range(4):  # back to back: the fake says ok to all of them...
            client.chat_postMessage(channel="C1", text=f"burst {i}")
        assert all(c.ok for c in burst.calls("chat.postMessage"))
        found = post_violations(burst.calls())  # ...the published limit does not: two go as a burst, two don't
        assert len(found) == 2 and all("in C1" in f for f in found), found
        with pytest.raises(AssertionError, match="published rate limits"):
            burst.assert_paced()

        ts = client.chat_postMessage(channel="C3", text="card")["ts"]
        edits = Recorder(fake)
        for i in range(PUBLISHED.updates_per_minute + 1):  # 51 edits in well under a minute, all ok here
            client.chat_update(channel="C3", ts=ts, text=f"v{i}")
        assert all(c.ok for c in edits.calls("chat.update"))
        assert update_violations(edits.calls()) and "51 chat.update calls" in update_violations(edits.calls())[0]


def test_the_recorder_counts_the_fakes_own_429s_but_not_injected_ones(fake_slack):
    client = client_of(fake_slack)
    recorder = Recorder(fake_slack)
    fake_slack.fail(429, methods="chat.postMessage", times=1)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C1", text="pushed back on purpose")
    assert rate_limited(recorder.calls()) == []  # a test's injected 429 is not the app's doing
    codes = []
    for i in range(4):  # the fake's own limit (a burst of 2 a channel)
        try:
            client.chat_postMessage(channel="C2", text=f"m{i}")
            codes.append(200)
        except SlackApiError as exc:
            codes.append(exc.response.status_code)
    assert 429 in codes and len(rate_limited(recorder.calls())) == codes.count(429)


def test_the_fake_can_fail_after_posting(fake_slack):
    """A 500 that did post, and an answer that never comes in time: the message is there either way."""
    fake_slack.fail(500, methods="chat.postMessage", times=1, after_work=True)
    with pytest.raises(SlackApiError) as caught:
        client_of(fake_slack).chat_postMessage(channel="C1", text="did it go? (500)")
    assert caught.value.response.status_code == 500
    (call,) = fake_slack.calls_to("chat.postMessage")
    assert call.injected and call.performed and call.status == 500 and call.channel == "C1"
    fake_slack.fail(500, methods="chat.postMessage", times=1, after_work=True, delay=1.0)
    with pytest.raises(Exception):  # noqa: B017 - a client timeout, whichever exception urllib raises
        client_of(fake_slack, timeout=0.3).chat_postMessage(channel="C1", text="did it go? (timeout)")
    fake_slack.wait_for(lambda: len(fake_slack.channel_messages("C1")) == 2, timeout=5, what="both messages stored")
    assert [m["text"] for m in fake_slack.channel_messages("C1")] == ["did it go? (500)", "did it go? (timeout)"]


# -- the app --------------------------------------------------------------------------------------


def submit(service, text: str):
    before = {j.task_id for j in service.store.list(limit=1000)}
    sent = service.sender.command(text)
    assert sent.status == 200 and "Queued" in sent.text, sent.text
    (job,) = [j for j in service.store.list(limit=1000) if j.task_id not in before]
    return job


def recorded(service, job, key: str, timeout: float = 30.0) -> str:
    ledger = service.notifier.ledger
    return service.fake.wait_for(lambda: ledger.read(job).posted.get(key), timeout=timeout, what=f"{key} recorded")


def settle(service, timeout: float = 60.0) -> None:
    assert service.notifier.wait_idle(timeout), "the notifier did not settle"


@pytest.mark.parametrize("failure", ["500", "timeout"])
def test_a_failure_after_slack_posted_leaves_one_card_and_one_final_reply(make_inproc, failure):
    """Slack stored the card (and later the final reply) but the app heard a 500, or nothing in
    time: the notifier must find its message by metadata instead of posting it again."""
    service = make_inproc(SLACK_HTTP_TIMEOUT="1")
    fake = service.fake
    recorder = Recorder(fake)
    ambiguous = {"500": dict(status=500), "timeout": dict(status=200, delay=2.5)}[failure]
    fake.fail(methods="chat.postMessage", times=1, after_work=True, **ambiguous)
    job = submit(service, "epochs=4 imgsz=64 dataset=synthetic:16 arch=yolov8n name=ambiguous")
    card_ts = recorded(service, job, "card")
    job = jobflow.start(service.store.get(job.task_id), service.store)
    recorded(service, job, "started")
    settle(service)

    fake.fail(methods="chat.postMessage", times=1, after_work=True, **ambiguous)
    jobflow.complete(service.store.get(job.task_id), service.store)
    final_ts = recorded(service, job, "final")
    settle(service)
    time.sleep(1.0)  # a blind re-post would come after the failure's back-off: give it the time

    # The premise: both ambiguous calls were the card's and the final reply's, and both posted.
    hit = [c for c in recorder.calls("chat.postMessage") if c.injected]
    assert [c.args["metadata"]["event_payload"]["key"] for c in hit] == ["card", "final"]
    assert all(c.performed for c in hit)
    cards, finals = fake.by_metadata(job.task_id, "card"), fake.by_metadata(job.task_id, "final")
    assert [m["ts"] for m in cards] == [card_ts], "the card was posted twice"
    assert [m["ts"] for m in finals] == [final_ts], "the final reply was posted twice"
    assert finals[0]["thread_ts"] == card_ts
    keys = [m["metadata"]["event_payload"]["key"] for m in fake.by_metadata(job.task_id)]
    assert sorted(keys) == ["card", "final", "started"]
    assert recorder.calls("conversations.history") and recorder.calls("conversations.replies")  # it looked first
    # The card found after the failure was edited to the job's end state.
    assert "Completed" in json.dumps(fake.message(CHANNEL, card_ts)["blocks"])
    recorder.assert_paced(at_least_posts=3)


@pytest.mark.parametrize("fake_slack", ["lenient"], indirect=True)
def test_a_burst_of_train_commands_stays_within_slacks_published_limits(make_inproc):
    """Eight /train at once in one channel, each job then reporting often: the posts and card
    edits wanted far exceed Slack's pace; what goes out must not. The fake enforces no limit
    here, so only the app's own pacing keeps it within Slack's (the recorder's verdict)."""
    service = make_inproc()
    recorder = Recorder(service.fake)
    texts = [f"epochs={EPOCHS} imgsz=64 dataset=synthetic:16 arch=yolov8n name=burst{i}" for i in range(JOBS)]
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        sent = list(pool.map(service.sender.command, texts))
    assert all(s.status == 200 and "Queued" in s.text for s in sent)
    jobs = service.store.list(limit=1000)
    assert len(jobs) == JOBS
    for job in jobs:
        recorded(service, job, "card")  # every card is up before the news: edits are wanted from here
    jobs = [jobflow.start(service.store.get(j.task_id), service.store) for j in jobs]
    for epoch in range(1, PROGRESS_STEPS + 1):  # every card changes ~3 times a second
        jobs = [jobflow.progress(service.store.get(j.task_id), service.store, epoch=epoch) for j in jobs]
        time.sleep(0.25)
    for job in jobs:
        jobflow.complete(service.store.get(job.task_id), service.store)
    for job in jobs:
        recorded(service, job, "final", timeout=120)
    settle(service, 120)

    recorder.assert_paced(at_least_posts=2 * JOBS)
    for job in jobs:
        keys = sorted(m["metadata"]["event_payload"]["key"] for m in service.fake.by_metadata(job.task_id))
        # Once each; "started" may be skipped when the job finished first (then the final says it all).
        assert len(keys) == len(set(keys)) and {"card", "final"} <= set(keys) <= {"card", "started", "final"}, keys
        card = service.fake.message(CHANNEL, service.notifier.ledger.read(job).card_ts)
        assert "Completed" in json.dumps(card["blocks"])
    assert len(recorder.calls("chat.update")) >= JOBS  # every card was edited at least to its end
    assert not [c for c in recorder.calls("chat.update", "chat.postMessage") if c.status == 429]


def test_posts_that_failed_still_count_toward_the_channels_pace(make_inproc):
    """Slack meters requests, answered or not: while it answers 500, the notifier's tries for
    several jobs in one channel must keep the channel's pace too, not come back to back."""
    service = make_inproc()
    recorder = Recorder(service.fake)
    service.fake.fail(500, methods="chat.postMessage", seconds=3.0)
    jobs = [submit(service, f"epochs=4 imgsz=64 dataset=synthetic:16 arch=yolov8n name=during{i}") for i in range(4)]
    for job in jobs:
        recorded(service, job, "card", timeout=60)
    settle(service)
    assert [c for c in recorder.calls("chat.postMessage") if c.status == 500]  # the premise: tries failed
    for job in jobs:
        assert len(service.fake.by_metadata(job.task_id, "card")) == 1
    recorder.assert_paced(at_least_posts=len(jobs))

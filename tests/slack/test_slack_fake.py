"""The fake Slack Web API answers like Slack: limits, 429s with Retry-After, injected faults.

Driven with slack_sdk's own WebClient, so the bot's tests rest on a fake that the
real client understands.
"""

from __future__ import annotations

import time

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.slack.slack_env import BOT_TOKEN


@pytest.fixture
def client(fake_slack):
    return WebClient(token=BOT_TOKEN, base_url=fake_slack.url, retry_handlers=[])


def test_auth_test_checks_the_token(fake_slack, client):
    assert client.auth_test()["user_id"] == fake_slack.bot_user
    with pytest.raises(SlackApiError) as caught:
        WebClient(token="xoxb-wrong", base_url=fake_slack.url).auth_test()
    assert caught.value.response["error"] == "invalid_auth"


def test_posts_past_one_a_second_per_channel_get_429_with_retry_after(fake_slack, client):
    statuses = []
    for i in range(4):
        try:
            client.chat_postMessage(channel="C1", text=f"m{i}")
            statuses.append(200)
        except SlackApiError as exc:
            statuses.append(exc.response.status_code)
            assert int(exc.response.headers["Retry-After"]) >= 1
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]  # a burst of two, then the limit
    assert len(fake_slack.channel_messages("C1")) == statuses.count(200)  # a 429 posts nothing
    client.chat_postMessage(channel="C2", text="other channels have their own limit")


def test_chat_update_has_a_workspace_tier_limit(fake_slack, client):
    ts = client.chat_postMessage(channel="C1", text="card")["ts"]
    codes = []
    for i in range(8):
        try:
            client.chat_update(channel="C1", ts=ts, text=f"v{i}")
            codes.append(200)
        except SlackApiError as exc:
            codes.append(exc.response.status_code)
    assert codes[:5] == [200] * 5 and 429 in codes[5:]


@pytest.mark.parametrize("blocks, why", [
    ([{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 51, "at most 50"),
    ([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}], "3001"),
    ([{"type": "actions", "elements": [{"type": "button", "action_id": "a",
                                        "text": {"type": "plain_text", "text": "x" * 76}}]}], "76"),
    ([{"type": "actions", "elements": [{"type": "button", "action_id": "a", "value": "v" * 2001,
                                        "text": {"type": "plain_text", "text": "ok"}}]}], "2001"),
    ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "151"),
])
def test_block_kit_limits_answer_invalid_blocks(client, blocks, why):
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C1", text="t", blocks=blocks)
    assert caught.value.response["error"] == "invalid_blocks"
    assert any(why in e for e in caught.value.response["errors"])


def test_modal_title_limit(client):
    view = {"type": "modal", "title": {"type": "plain_text", "text": "x" * 25}, "blocks": []}
    with pytest.raises(SlackApiError) as caught:
        client.views_open(trigger_id="t", view=view)
    assert caught.value.response["error"] == "invalid_arguments"


def test_injected_faults_then_recovery(fake_slack, client):
    fake_slack.fail(500, methods="chat.postMessage", times=1)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C1", text="x")
    assert caught.value.response.status_code == 500
    fake_slack.fail(429, methods="chat.postMessage", times=1, retry_after=3)
    with pytest.raises(SlackApiError) as caught:
        client.chat_postMessage(channel="C1", text="x")
    assert caught.value.response.headers["Retry-After"] == "3"
    assert fake_slack.channel_messages("C1") == []
    client.chat_postMessage(channel="C1", text="x")
    assert len(fake_slack.channel_messages("C1")) == 1


def test_slow_answers_still_do_the_work(fake_slack):
    fake_slack.fail(200, methods="chat.postMessage", times=1, delay=1.0)
    impatient = WebClient(token=BOT_TOKEN, base_url=fake_slack.url, timeout=0.3, retry_handlers=[])
    with pytest.raises(Exception):
        impatient.chat_postMessage(channel="C1", text="did it go?")
    time.sleep(1.0)
    assert [m["text"] for m in fake_slack.channel_messages("C1")] == ["did it go?"]


def test_threads_and_metadata_lookup(fake_slack, client):
    root = client.chat_postMessage(channel="C1", text="card")["ts"]
    client.chat_postMessage(channel="C1", text="reply", thread_ts=root,
                            metadata={"event_type": "laxai_notify", "event_payload": {"task_id": "t", "key": "k"}})
    plain = client.conversations_replies(channel="C1", ts=root)["messages"]
    assert [m["text"] for m in plain] == ["card", "reply"] and "metadata" not in plain[1]
    full = client.conversations_replies(channel="C1", ts=root, include_all_metadata=True)["messages"]
    assert full[1]["metadata"]["event_payload"] == {"task_id": "t", "key": "k"}
    history = client.conversations_history(channel="C1", include_all_metadata=True)["messages"]
    assert [m["text"] for m in history] == ["card"]  # roots only, newest first
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C1", text="x", thread_ts="123.456")

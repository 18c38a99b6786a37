"""The fake Slack's external upload flow holds Slack's limits (tests/fakes/fake_slack_files.py), and the
notifier's upload (bot/notifier/uploads.py) reads each failure the way its retries need."""

from __future__ import annotations

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.notifier import uploads
from bot.pacer import Pacer
from tests.fakes.fake_slack import FakeSlack

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def fake():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(fake):
    return WebClient(token=fake.token, base_url=fake.url, retry_handlers=[])


def error_of(call) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value.response["error"]


def test_the_upload_url_wants_a_length_a_name_and_exactly_that_many_bytes(fake, client):
    assert error_of(lambda: client.files_getUploadURLExternal(filename="a.png", length=0)) == "missing_argument"
    assert error_of(lambda: client.api_call("files.getUploadURLExternal", params={"length": 5})) == "invalid_arguments"
    assert error_of(lambda: client.files_getUploadURLExternal(filename="a.png", length=5, alt_txt="x" * 1001)) \
        == "alt_txt_too_large"
    fake.max_file_bytes = 10
    assert error_of(lambda: client.files_getUploadURLExternal(filename="a.png", length=11)) \
        == "file_upload_size_restricted"
    fake.max_file_bytes = 1024 ** 3
    answer = client.files_getUploadURLExternal(filename="a.png", length=len(PNG))
    assert httpx.post(answer["upload_url"], content=PNG[:-1]).status_code == 400  # not the announced length
    assert httpx.post(answer["upload_url"] + "x", content=PNG).status_code == 404
    assert error_of(lambda: client.files_completeUploadExternal(files=[{"id": answer["file_id"]}])) \
        == "file_not_found"  # the bytes never arrived
    assert httpx.post(answer["upload_url"], content=PNG).status_code == 200
    assert client.files_completeUploadExternal(files=[{"id": answer["file_id"], "title": "t"}])["files"][0]["id"] \
        == answer["file_id"]
    assert fake.shared_files() == []  # no channel: a private file, shared nowhere


def test_the_share_checks_its_file_ids_channel_and_thread(fake, client):
    card = client.chat_postMessage(channel="C1", text="card")
    reply = client.chat_postMessage(channel="C1", text="reply", thread_ts=card["ts"])
    answer = client.files_getUploadURLExternal(filename="a.png", length=len(PNG))
    httpx.post(answer["upload_url"], content=PNG)
    done = [{"id": answer["file_id"], "title": "t"}]
    assert error_of(lambda: client.files_completeUploadExternal(files=[{"id": "F404"}], channel_id="C1")) \
        == "file_not_found"
    assert error_of(lambda: client.files_completeUploadExternal(files=done, thread_ts=card["ts"])) == "invalid_arguments"
    assert error_of(lambda: client.files_completeUploadExternal(files=done, channel_id="C1", thread_ts="1.2")) \
        == "thread_not_found"
    fake.unreachable_channels.add("C9")
    assert error_of(lambda: client.files_completeUploadExternal(files=done, channel_id="C9")) == "not_in_channel"
    client.files_completeUploadExternal(files=done, channel_id="C1", thread_ts=reply["ts"], initial_comment="look")
    (shared,) = fake.shared_files("C1", card["ts"])  # a reply's ts: filed under its parent
    assert shared["data"] == PNG and shared["comment"] == "look"
    assert fake.thread("C1", card["ts"])[-1]["files"][0]["name"] == "a.png"


def test_both_methods_are_rate_limited_like_tier_4(fake, client):
    statuses = []
    for _ in range(40):
        try:
            client.files_getUploadURLExternal(filename="a.png", length=1)
            statuses.append(200)
        except SlackApiError as exc:
            statuses.append(exc.response.status_code)
            assert int(exc.response.headers["Retry-After"][0] if isinstance(exc.response.headers["Retry-After"], list)
                       else exc.response.headers["Retry-After"]) >= 1
    assert 15 <= statuses.count(200) < 40 and 429 in statuses


def test_the_notifiers_upload_reads_failures_as_its_retries_need(fake, client):
    pacer = Pacer(0.0, 50)
    card = client.chat_postMessage(channel="C1", text="card")
    item = uploads.Upload("C1", card["ts"], PNG, "laxai-curves-t.png", "Training curves: t", "2 epochs")
    fake.fail(500, methods="files.getUploadURLExternal", times=1)
    assert uploads.upload(client, pacer, item).kind == "not_sent"  # nothing can have been shared yet
    fake.fail(status=200, methods="files.getUploadURLExternal", error="file_uploads_disabled", times=1)
    assert uploads.upload(client, pacer, item).kind == "refused"
    fake.fail(500, methods="files.completeUploadExternal", times=1)
    assert uploads.upload(client, pacer, item).kind == "maybe_sent"
    posted = uploads.upload(client, pacer, item)
    assert posted.ok and posted.ts == fake.shared_files("C1", card["ts"])[-1]["id"]

"""The Bolt app over real HTTP: signed requests in, acks out, jobs in the store.

The service runs in this process without a dispatcher (nothing trains); requests
are signed exactly as Slack signs them and the app's WebClient talks to the fake
Slack Web API.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse

import pytest

from orchestrator.domain.job import Origin
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from tests.fakes.fake_slack import validate_view

from tests.slack import jobflow
from tests.slack.slack_env import ADMIN, ALICE, BOB, BOT_TOKEN, CHANNEL, SIGNING_SECRET, TEAM
from tests.slack.slack_requests import SlackSender, trigger_id

ACK_LIMIT = 3.0  # Slack shows the user an error past this


def all_jobs(service):
    return service.store.list(limit=1000)


def card_of(service, task_id, timeout=15.0):
    fake = service.fake
    found = fake.wait_for(lambda: fake.by_metadata(task_id, "card"), timeout=timeout, what=f"card of {task_id}")
    return fake.message(found[0]["channel"], found[0]["ts"])


def wait_card(service, task_id, predicate, timeout=15.0):
    """The card, once ``predicate(card)`` holds (the notifier edits it as the job changes)."""
    fake = service.fake

    def check():
        card = card_of(service, task_id)
        return card if predicate(card) else None

    return fake.wait_for(check, timeout=timeout, what=f"card of {task_id} to change")


def has_button(action_id):
    def check(card):
        return any(e.get("action_id") == action_id for b in card.get("blocks") or [] for e in b.get("elements") or [])
    return check


# -- signatures ---------------------------------------------------------------------


def test_forged_or_stale_requests_get_401_and_do_nothing(inproc):
    sender = inproc.sender
    body = sender.command_body("epochs=2")
    assert sender.post(body, secret="not-the-secret").status == 401
    assert sender.post(body, timestamp=int(time.time()) - 301).status == 401  # older than 5 minutes
    assert sender.post(body, timestamp=int(time.time()) + 400).status == 401  # or from the future
    tampered = sender.post(body.replace("epochs%3D2", "epochs%3D3"),
                           headers=dict(zip(("X-Slack-Request-Timestamp", "X-Slack-Signature"),
                                            _signature_of(body))))
    assert tampered.status == 401
    unsigned = sender.http.post(sender.url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 401
    assert all_jobs(inproc) == []
    assert sender.post(body).status == 200  # the same body, properly signed, is accepted
    assert len(all_jobs(inproc)) == 1


def _signature_of(body):
    from tests.slack.slack_requests import sign

    headers = sign(SIGNING_SECRET, body)
    return headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]


# -- /train ---------------------------------------------------------------------------


def test_train_acks_fast_with_an_ephemeral_confirmation_and_queues_the_job(inproc):
    sent = inproc.sender.command("epochs=2 imgsz=64 dataset=synthetic:16 arch=yolov8n name=\u201cfirst run\u201d")
    assert sent.status == 200 and sent.seconds < ACK_LIMIT
    body = sent.json()
    assert body["response_type"] == "ephemeral"
    assert "Queued" in body["text"] and "first run" in body["text"]
    (job,) = all_jobs(inproc)
    assert job.tenant_id == TEAM and job.status is JobStatus.QUEUED
    assert job.origin.source == "slack" and job.origin.user == ALICE and job.origin.channel == CHANNEL
    assert job.origin.team == TEAM and job.origin.request_id
    assert job.idempotency_key and job.idempotency_key.startswith("slack:")
    assert job.spec.training_params.epochs == 2 and job.spec.model_params.input_size == 64
    assert job.spec.custom_name == "first run"
    # The card is the notifier's: posted in the channel, not by the request.
    card = card_of(inproc, job.task_id)
    assert card["thread_ts"] is None and card["channel"] == CHANNEL
    assert job.task_id in json.dumps(card["blocks"])
    inproc.fake.wait_for(lambda: inproc.notifier.ledger.read(job).card_ts == card["ts"])  # its slack_threads record
    # No Web API call came from the command path (only the notifier's post).
    assert {c.method for c in inproc.fake.calls} <= {"auth.test", "chat.postMessage", "chat.update"}


def test_the_enterprise_is_the_tenant_on_grid(inproc):
    grid = SlackSender(inproc.url, SIGNING_SECRET, team_id=TEAM, enterprise_id="E0GRID")
    try:
        assert grid.command("epochs=1").status == 200
    finally:
        grid.close()
    (job,) = all_jobs(inproc)
    assert job.tenant_id == "E0GRID" and job.origin.team == TEAM


def test_a_repeated_delivery_of_the_same_command_makes_one_job(inproc):
    body = inproc.sender.command_body("epochs=3", trigger=trigger_id())
    first, again = inproc.sender.post(body), inproc.sender.post(body)
    assert "Queued" in first.text and "Already queued" in again.text
    assert len(all_jobs(inproc)) == 1


@pytest.mark.parametrize("text, field, words", [
    ("epochs=abc", "epochs", ["whole number", "1 to 1000"]),
    ("epoch=3", "epoch", ["did you mean `epochs`"]),
    ("arch=resnet", "arch", ["unknown architecture", "yolo11n"]),
    ("dataset=ftp://host/data", "dataset", ["a gs:// URI"]),  # JobService's own check
    ("batch_size=0 lr=7", "batch_size", ["greater than or equal to 1"]),
])
def test_bad_text_answers_ephemeral_errors_naming_the_field_and_submits_nothing(inproc, text, field, words):
    assert_refused(inproc, text, field, words)


# Local only: on the gcp backend the service checks a local path only lexically against the tenant's
# data roots, since its workers (Cloud Run executions) read paths inside their own container.
@pytest.mark.parametrize("backend", ["local"])
def test_a_dataset_path_that_does_not_exist_is_refused_on_the_local_backend(inproc):
    assert_refused(inproc, "dataset=/no/such/dir", "dataset", ["not found in your data roots"])


def assert_refused(inproc, text, field, words):
    sent = inproc.sender.command(text)
    assert sent.status == 200 and sent.seconds < ACK_LIMIT
    assert sent.json()["response_type"] == "ephemeral"
    assert f"*{field}*" in sent.text
    for word in words:
        assert word in sent.text
    assert "Nothing was submitted" in sent.text
    assert all_jobs(inproc) == []
    time.sleep(0.3)
    assert inproc.fake.calls_to("chat.postMessage") == []


def test_help_status_and_list(inproc):
    assert "/train status" in inproc.sender.command("help").text
    assert "No jobs in this channel" in inproc.sender.command("status").text
    assert "No jobs in this channel" in inproc.sender.command("list").text
    inproc.sender.command("epochs=2 name=alpha")
    inproc.sender.command("epochs=3 name=beta")
    inproc.sender.command("epochs=4 name=gamma", channel="C0OTHER")
    latest = inproc.sender.command("status").text
    assert "beta" in latest and "alpha" not in latest  # the latest in *this* channel
    alpha = next(j for j in all_jobs(inproc) if j.spec.custom_name == "alpha")
    assert "alpha" in inproc.sender.command(f"status {alpha.task_id[:8]}").text
    assert "alpha" in inproc.sender.command(f"status {alpha.task_id}").text
    listed = inproc.sender.command("list").text
    assert "alpha" in listed and "beta" in listed and "gamma" not in listed
    assert "No job `ffffffff`" in inproc.sender.command("status ffffffff").text


def test_another_team_cannot_see_or_touch_a_job(inproc):
    inproc.sender.command("epochs=2 name=secret")
    (job,) = all_jobs(inproc)
    other = SlackSender(inproc.url, SIGNING_SECRET, team_id="T0OTHER")
    try:
        assert "No job" in other.command(f"status {job.task_id[:8]}").text
        assert "No job" in other.command(f"cancel {job.task_id}").text
    finally:
        other.close()
    assert inproc.store.get(job.task_id).status is JobStatus.QUEUED


def test_cancel_and_retry_subcommands(inproc):
    inproc.sender.command("epochs=2", user=ALICE)
    (job,) = all_jobs(inproc)
    short = job.task_id[:8]
    assert "Only <@U0ALICE>" in inproc.sender.command(f"cancel {short}", user=BOB).text
    assert inproc.store.get(job.task_id).status is JobStatus.QUEUED
    assert "only finished jobs" in inproc.sender.command(f"retry {short}", user=ALICE).text
    assert "Cancelling" in inproc.sender.command(f"cancel {short}", user=ALICE).text
    assert inproc.store.get(job.task_id).status is JobStatus.CANCELLED
    assert "already cancelled" in inproc.sender.command(f"cancel {short}", user=ALICE).text
    assert "Only <@U0ALICE>" in inproc.sender.command(f"retry {short}", user=BOB).text  # see test_slack_trust
    retried = inproc.sender.command(f"retry {short}", user=ADMIN).text
    assert "Retrying" in retried
    new = next(j for j in all_jobs(inproc) if j.retry_of == job.task_id)
    assert new.origin.user == ADMIN and new.spec == job.spec


def test_allowed_channels_refuse_other_channels(make_inproc):
    service = make_inproc(SLACK_ALLOWED_CHANNELS="C0TRAIN, C0ML")
    refused = service.sender.command("epochs=2", channel="C0RANDOM")
    assert "isn't enabled in this channel" in refused.text and "<#C0TRAIN>" in refused.text
    assert service.sender.command("epochs=2", channel="C0ML").status == 200
    assert [j.origin.channel for j in all_jobs(service)] == ["C0ML"]


# -- the form ---------------------------------------------------------------------------


def test_empty_command_opens_the_form_then_bad_values_are_shown_under_their_fields(inproc):
    sent = inproc.sender.command("", trigger="trig-form-1")
    assert sent.status == 200 and sent.seconds < ACK_LIMIT and not sent.response.content
    (call,) = inproc.fake.calls_to("views.open", ok=True)
    assert call.args["trigger_id"] == "trig-form-1"
    (view,) = inproc.fake.views
    assert not validate_view(view)

    bad = inproc.sender.submit_view(view, {"epochs": "abc", "lr": "5"})
    assert bad.status == 200 and bad.seconds < ACK_LIMIT
    answer = bad.json()
    assert answer["response_action"] == "errors"
    assert "whole number" in answer["errors"]["epochs"] and "less than or equal to 1" in answer["errors"]["lr"]
    assert all_jobs(inproc) == []

    good = inproc.sender.submit_view(view, {"epochs": "2", "imgsz": "64", "name": "from the form",
                                            "arch": "yolov8n", "tags": "a, b"})
    assert good.status == 200 and not good.response.content  # an empty ack closes the form
    (job,) = all_jobs(inproc)
    assert job.origin.channel == CHANNEL and job.origin.user == ALICE
    assert job.spec.custom_name == "from the form" and job.spec.model_params.architecture == "yolov8n"
    assert job.spec.wandb_tags == ["a", "b"] and job.spec.gpu_type == "nvidia-l4"  # the form's default
    again = inproc.sender.submit_view(view, {"epochs": "2"})  # the same view submitted twice
    assert again.status == 200 and len(all_jobs(inproc)) == 1
    card_of(inproc, job.task_id)


def test_the_form_reports_a_failed_views_open(inproc):
    inproc.fake.fail(500, methods="views.open", times=5)
    sent = inproc.sender.command("")
    assert sent.seconds < ACK_LIMIT and "Couldn't open the form" in sent.text


# -- buttons -----------------------------------------------------------------------------


def test_cancel_button_only_for_the_submitter_or_an_admin(inproc):
    inproc.sender.command("epochs=2 name=alices", user=ALICE)
    inproc.sender.command("epochs=2 name=bobs", user=BOB)
    alices = next(j for j in all_jobs(inproc) if j.spec.custom_name == "alices")
    bobs = next(j for j in all_jobs(inproc) if j.spec.custom_name == "bobs")
    card = card_of(inproc, alices.task_id)

    refused = inproc.sender.click(card, "laxai_cancel", user=BOB)
    assert refused.status == 200 and refused.seconds < ACK_LIMIT
    (note,) = inproc.fake.ephemerals
    assert note["user"] == BOB and note["channel"] == CHANNEL and "Only <@U0ALICE>" in note["text"]
    assert inproc.store.get(alices.task_id).status is JobStatus.QUEUED and inproc.store.get(alices.task_id).cancel is None

    for _ in range(2):  # a double click is harmless
        assert inproc.sender.click(card, "laxai_cancel", user=ALICE).status == 200
    cancelled = inproc.store.get(alices.task_id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cancel.by == ALICE
    assert len(inproc.fake.ephemerals) == 1

    assert inproc.sender.click(card_of(inproc, bobs.task_id), "laxai_cancel", user=ADMIN).status == 200
    assert inproc.store.get(bobs.task_id).cancel.by == ADMIN

    # The notifier says who cancelled it, in the job's thread, and the card drops its Cancel button.
    fake = inproc.fake
    final = fake.wait_for(lambda: fake.by_metadata(alices.task_id, "final"), what="cancel reply")
    assert final[0]["thread_ts"] == card["ts"] and "by <@U0ALICE>" in json.dumps(final[0]["blocks"])
    wait_card(inproc, alices.task_id, lambda c: not has_button("laxai_cancel")(c))


def test_retry_button_makes_one_linked_job_in_the_same_thread_per_click(inproc):
    inproc.sender.command("epochs=2 name=flaky", user=ALICE)
    (original,) = all_jobs(inproc)
    jobflow.fail(jobflow.start(inproc.store.get(original.task_id), inproc.store), inproc.store)
    card = wait_card(inproc, original.task_id, has_button("laxai_retry"))

    clicks = [inproc.sender.click(card, "laxai_retry", user=ALICE) for _ in range(2)]  # a double click
    assert all(c.status == 200 and c.seconds < ACK_LIMIT for c in clicks)
    retries = [j for j in all_jobs(inproc) if j.retry_of == original.task_id]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.origin.user == ALICE and retry.origin.channel == CHANNEL
    assert retry.origin.thread_ts == card["ts"]  # lives in the original's thread
    assert retry.spec == original.spec

    fake = inproc.fake
    retry_card = card_of(inproc, retry.task_id)
    assert retry_card["thread_ts"] == card["ts"] and "retry of" in json.dumps(retry_card["blocks"])
    # The original's card learns about the retry, and its Retry button now means "another one".
    updated = wait_card(inproc, original.task_id, lambda c: "retried as" in json.dumps(c["blocks"]))
    assert inproc.sender.click(updated, "laxai_retry", user=ALICE).status == 200
    assert len([j for j in all_jobs(inproc) if j.retry_of == original.task_id]) == 2
    assert not any(m.get("reply_to_reply") for m in fake.channel_messages(CHANNEL))


def test_retrying_a_retry_stays_in_the_first_thread(inproc):
    inproc.sender.command("epochs=2", user=ALICE)
    (original,) = all_jobs(inproc)
    jobflow.cancel(inproc.store.get(original.task_id), inproc.store)
    inproc.sender.click(wait_card(inproc, original.task_id, has_button("laxai_retry")), "laxai_retry")
    retry = next(j for j in all_jobs(inproc) if j.retry_of == original.task_id)
    jobflow.cancel(inproc.store.get(retry.task_id), inproc.store)
    inproc.sender.click(wait_card(inproc, retry.task_id, has_button("laxai_retry")), "laxai_retry")
    second = next(j for j in all_jobs(inproc) if j.retry_of == retry.task_id)
    root = card_of(inproc, original.task_id)["ts"]
    assert second.origin.thread_ts == root
    assert card_of(inproc, second.task_id)["thread_ts"] == root
    assert not any(m.get("reply_to_reply") for m in inproc.fake.channel_messages(CHANNEL))


def test_link_button_clicks_are_acked(inproc):
    message = {"ts": "1.000001", "blocks": [{"type": "actions", "block_id": "x", "elements": [
        {"type": "button", "action_id": "laxai_wandb", "text": {"type": "plain_text", "text": "W&B"},
         "url": "https://wandb.ai/x", "value": "t"}]}]}
    assert inproc.sender.click(message, "laxai_wandb").status == 200


# -- the notifier ignores jobs from elsewhere, and secrets stay out of logs ------------------


def test_jobs_not_from_slack_are_ignored(inproc):
    job, _ = inproc.runtime.jobs.submit(JobSpec(tenant_id=TEAM), Origin(source="api", user="cli"))
    jobflow.complete(jobflow.start(job, inproc.store), inproc.store)
    inproc.sender.command("epochs=2")  # a Slack job after it, to know the notifier has caught up
    slack_job = next(j for j in all_jobs(inproc) if j.origin.source == "slack")
    card_of(inproc, slack_job.task_id)
    assert inproc.fake.by_metadata(job.task_id) == []


def test_tokens_and_signing_secret_never_reach_the_logs(make_inproc, caplog):
    caplog.set_level(logging.DEBUG)
    service = make_inproc()
    service.sender.command("epochs=2", user=ALICE)
    service.sender.command("")
    service.sender.post(service.sender.command_body("help"), secret="forged-secret")
    (job,) = all_jobs(service)
    card = card_of(service, job.task_id)
    service.sender.click(card, "laxai_cancel", user=BOB)
    service.fake.fail(500, methods="chat.postEphemeral", times=3)
    service.sender.click(card, "laxai_cancel", user=BOB)
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "Slack notifier" in logged  # the notifier did log
    for secret in (BOT_TOKEN, SIGNING_SECRET, urllib.parse.quote(BOT_TOKEN)):
        assert secret not in logged


def test_status_links_to_the_jobs_thread_once_its_card_is_posted(inproc):
    """The card's ts lives in the notifier's slack_threads record, not on the job: /train status
    reads it through the notifier's ledger and links to the thread."""
    inproc.sender.command("epochs=2 name=linked")
    deadline = time.monotonic() + 30
    while not inproc.fake.calls_to("chat.postMessage", ok=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inproc.notifier.wait_idle(30)
    (card,) = inproc.fake.calls_to("chat.postMessage", ok=True)
    (job,) = all_jobs(inproc)
    assert job.notify == {}  # the core's record carries no Slack state
    reply = inproc.sender.command(f"status {job.task_id[:8]}").json()
    links = [element["text"] for block in reply["blocks"] if block["type"] == "context"
             for element in block["elements"] if "Open the job's thread" in element.get("text", "")]
    assert len(links) == 1
    assert card.response["ts"].replace(".", "") in links[0]

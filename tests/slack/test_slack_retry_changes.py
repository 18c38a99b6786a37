"""Retry with changes over real signed Slack requests: the card's button opens the form prefilled
with the job's spec (views.open at the fake Slack), its submission makes a linked job in the same
thread whose card shows the lineage, and a teammate's forged submission is refused.

The service runs in this process without a dispatcher (nothing trains): the jobs fail and are
cancelled by the real transitions (tests/slack/jobflow.py). Once per backend (SQLite, Firestore).
"""

from __future__ import annotations

import json
import urllib.parse

from tests.slack import jobflow
from tests.slack.slack_env import ALICE, BOB, CHANNEL
from tests.slack.test_slack_http import ACK_LIMIT, all_jobs, card_of, has_button, wait_card

ACTION = "laxai_retry_changes"


def retries_of(service, task_id):
    return [j for j in all_jobs(service) if j.retry_of == task_id]


def failed(service, task_id):
    jobflow.fail(jobflow.start(service.store.get(task_id), service.store), service.store)
    return wait_card(service, task_id, has_button(ACTION))


def opened_by(service, card, user):
    """Click Retry with changes on ``card`` as ``user``; the view views.open got (None: none)."""
    fake, before = service.fake, len(service.fake.views)
    body = service.sender.action_body(card, ACTION, user=user)
    click = service.sender.post(body)
    assert click.status == 200 and click.seconds < ACK_LIMIT
    if len(fake.views) == before:
        return None
    view = fake.views[before]
    trigger = json.loads(urllib.parse.parse_qs(body)["payload"][0])["trigger_id"]
    assert view["trigger_id"] == trigger  # opened with the click's own trigger, before the ack
    return view


def initial(view):
    return {b["block_id"]: b["element"].get("initial_value") or (b["element"].get("initial_option") or {})
            .get("value") for b in view["blocks"]}


def test_retry_with_changes_prefills_the_form_and_posts_the_new_version_in_the_same_thread(inproc):
    assert inproc.sender.command("epochs=3 lr=0.001 name=base tags=a,b", user=ALICE).status == 200
    (original,) = all_jobs(inproc)
    card = failed(inproc, original.task_id)

    ephemerals = len(inproc.fake.ephemerals)
    assert opened_by(inproc, card, BOB) is None  # a teammate may not: no form opens
    (note,) = inproc.fake.ephemerals[ephemerals:]
    assert note["user"] == BOB and "can retry it" in note["text"]

    view = opened_by(inproc, card, ALICE)
    assert view["callback_id"] == "laxai_retry_modal"
    shown = initial(view)
    assert (shown["epochs"], shown["lr"], shown["name"], shown["tags"]) == ("3", "0.001", "base", "a,b")

    # Bob replays the form Alice was shown (its private_metadata names her job): refused, nothing stored.
    forged = inproc.sender.submit_view(view, {"epochs": "500"}, user=BOB)
    assert forged.json()["response_action"] == "errors" and "submitter or an admin" in json.dumps(forged.json())
    garbled = {**view, "private_metadata": json.dumps({"channel": CHANNEL, "retry_of": "../" + original.task_id})}
    assert inproc.sender.submit_view(garbled, {}, user=ALICE).json()["response_action"] == "errors"
    assert retries_of(inproc, original.task_id) == []

    body = inproc.sender.view_body(view, {"epochs": "10", "lr": "0.0005"}, user=ALICE)
    sent = [inproc.sender.post(body) for _ in range(2)]  # a repeated delivery makes one job
    assert all(s.status == 200 and not s.response.content for s in sent)
    (v2,) = retries_of(inproc, original.task_id)
    assert v2.spec.training_params.epochs == 10 and v2.spec.training_params.learning_rate == 0.0005
    assert v2.spec.custom_name == "base" and v2.spec.wandb_tags == ["a", "b"] and v2.origin.user == ALICE
    assert v2.origin.thread_ts == card["ts"] and v2.lineage.number == 2

    v2_card = card_of(inproc, v2.task_id)
    assert v2_card["thread_ts"] == card["ts"]  # in the original's thread
    text = json.dumps(v2_card["blocks"], ensure_ascii=False)
    assert f"v1 `{original.task_id[:8]}`" in text and "*v2 (this run)* (epochs 3\u219210, lr 0.001\u21920.0005)" in text

    # v3, with changes from v2: still in the first thread, the whole chain on its card.
    v3_view = opened_by(inproc, failed(inproc, v2.task_id), ALICE)
    assert initial(v3_view)["epochs"] == "10"
    assert inproc.sender.submit_view(v3_view, {"batch": "8"}, user=ALICE).status == 200
    (v3,) = retries_of(inproc, v2.task_id)
    v3_card = card_of(inproc, v3.task_id)
    assert v3_card["thread_ts"] == card["ts"]
    assert (f"v1 `{original.task_id[:8]}` \u2192 v2 `{v2.task_id[:8]}` (epochs 3\u219210, lr 0.001\u21920.0005) "
            f"\u2192 *v3 (this run)* (batch 16\u21928)") in json.dumps(v3_card["blocks"], ensure_ascii=False)
    wait_card(inproc, original.task_id, lambda c: "retried as" in json.dumps(c["blocks"]))
    assert not any(m.get("reply_to_reply") for m in inproc.fake.channel_messages(CHANNEL))

"""Block Kit rendering: every message stays inside Slack's limits, whatever the job holds.

Limits are checked with the fake Slack's validator (the same checks it answers
``invalid_blocks`` with), so a message that passes here is one Slack accepts.
"""

from __future__ import annotations

import json

import pytest

from bot import blocks, modal, plan
from bot.options import OptionErrors, build_spec
from orchestrator.domain.errors import FieldError
from orchestrator.domain.job import EndReason
from tests.fakes.fake_slack import validate_blocks, validate_view

from tests.slack import jobflow


def assert_valid(message: blocks.Message) -> None:
    assert not validate_blocks(message.blocks), validate_blocks(message.blocks)
    assert message.text and len(message.text) <= blocks.FALLBACK_TEXT


def buttons(message: blocks.Message) -> dict[str, dict]:
    found = {}
    for block in message.blocks:
        for element in block.get("elements") or []:
            if element.get("type") == "button":
                found[element["action_id"]] = element
    return found


def all_text(message: blocks.Message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


def markup_texts(message: blocks.Message) -> list[str]:
    """Every text Slack parses for mentions: mrkdwn objects and the fallback text."""
    found = [message.text]

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.blocks)
    return found


def test_a_running_card_shows_the_job_and_offers_cancel_with_a_confirm():
    job = jobflow.progress(jobflow.start(jobflow.make_job(epochs=4, custom_name="baseline")), epoch=2,
                           metrics={"mAP50-95": 0.25, "mAP50": 0.4})
    card = blocks.card(job)
    assert_valid(card)
    text = all_text(card)
    for expected in ("baseline", "yolo11n", "*Epochs*\\n4", "*Batch*\\n16", "0.001", "`synthetic`", "nvidia-l4",
                     "<@U0ALICE>", ":runner:", "epoch 2/4", "50%", "loss 1.5", "mAP50-95 0.250", "Cost so far"):
        assert expected in text, expected
    cancel = buttons(card)[blocks.CANCEL_ACTION]
    assert cancel["style"] == "danger" and cancel["value"] == job.task_id
    assert cancel["confirm"]["style"] == "danger"
    assert blocks.RETRY_ACTION not in buttons(card)


@pytest.mark.parametrize("finish", [jobflow.complete, jobflow.fail, jobflow.cancel])
def test_a_finished_card_offers_retry_not_cancel(finish):
    job = finish(jobflow.start(jobflow.make_job()))
    card = blocks.card(job)
    assert_valid(card)
    assert blocks.CANCEL_ACTION not in buttons(card)
    value = json.loads(buttons(card)[blocks.RETRY_ACTION]["value"])
    assert value == {"task": job.task_id, "n": 0}
    assert blocks.STATUS_EMOJI[job.status] in all_text(card)


def test_retry_button_value_changes_once_the_job_was_retried():
    job = jobflow.complete(jobflow.start(jobflow.make_job()))
    retried = job.model_copy(update={"notify": {"retries": ["abcdef12-0000"]}})
    assert json.loads(buttons(blocks.card(retried))[blocks.RETRY_ACTION]["value"])["n"] == 1
    assert "retried as `abcdef12`" in all_text(blocks.card(retried))


def test_wandb_link_button_only_with_a_url():
    job = jobflow.complete(jobflow.start(jobflow.make_job()), artifacts={"wandb_url": "https://wandb.ai/x/y/runs/z",
                                                                         "wandb_run": "x/y/z"})
    link = buttons(blocks.card(job))[blocks.WANDB_ACTION]
    assert link["url"] == "https://wandb.ai/x/y/runs/z"
    assert blocks.WANDB_ACTION not in buttons(blocks.card(jobflow.complete(jobflow.start(jobflow.make_job()))))


def test_huge_and_hostile_values_are_clipped_and_escaped():
    hostile = "<!channel> <@U999> &" + "x" * 200
    job = jobflow.make_job(custom_name=hostile[:100], dataset="/data/" + "d" * 1000,
                           wandb_tags=[("t" * 60) + str(i) for i in range(20)])
    job = jobflow.start(job)
    job = job.model_copy(update={"progress": job.progress.model_copy(update={"message": "m" * 10_000})})
    job = jobflow.fail(job, message="<!here> " + "e" * 5000, tail=[f"line {i} " + "z" * 400 for i in range(500)])
    for message in (blocks.card(job), blocks.final(job), blocks.status_message(job, "nvidia-l4")):
        assert_valid(message)
        for text in markup_texts(message):
            assert "<!channel>" not in text and "<!here>" not in text and "<@U999>" not in text
    header = blocks.card(job).blocks[0]["text"]["text"]
    assert len(header) <= blocks.HEADER_TEXT
    assert "line 499" in all_text(blocks.final(job))  # the end of the error output is what is kept


def test_failed_reply_has_reason_and_last_lines_in_a_code_block():
    job = jobflow.fail(jobflow.start(jobflow.make_job()), message="dataset is empty",
                       tail=["Traceback (most recent call last):", "ValueError: dataset is empty"])
    reply = blocks.final(job)
    assert_valid(reply)
    text = all_text(reply)
    assert "training_error: dataset is empty" in text
    assert "```" in text and "ValueError: dataset is empty" in text


def test_completed_reply_has_metrics_model_link_times_and_cost_with_gpu_estimate():
    job = jobflow.complete(jobflow.start(jobflow.make_job()),
                           artifacts={"best_checkpoint": "/a/best.pt", "registry_name": "T0LAXAI-yolo11n",
                                      "registry_version": 3, "wandb_url": "https://wandb.ai/r", "wandb_run": "r"})
    reply = blocks.final(job)
    assert_valid(reply)
    text = all_text(reply)
    for expected in ("Completed", "mAP50-95 0.310", "mAP50 0.520", "`T0LAXAI-yolo11n` v3", "`/a/best.pt`",
                     "<https://wandb.ai/r|r>", "Wall time", "CPU time", "on cpu", "on nvidia-l4"):
        assert expected in text, expected


def test_cancelled_reply_names_who():
    job = jobflow.cancel(jobflow.start(jobflow.make_job()), by="U0BOB")
    assert "Cancelled* by <@U0BOB>" in all_text(blocks.final(job))
    api = jobflow.cancel(jobflow.make_job(), by="tenant-token")  # not a Slack user: plain text
    assert "by tenant-token" in all_text(blocks.final(api))


def test_interrupted_and_resumed_reply():
    job = jobflow.progress(jobflow.start(jobflow.make_job(epochs=10)), epoch=3)
    job = jobflow.interrupt(job, lost_seconds=42)
    job = jobflow.start(job, start_epoch=3)
    reply = blocks.resumed(job, 2)
    assert_valid(reply)
    text = reply.blocks[0]["text"]["text"]
    assert "Interrupted* at epoch 3/10" in text and "resumed from checkpoint at epoch 3" in text
    assert "lost 42s ($" in text
    planned = jobflow.start(jobflow.interrupt(jobflow.progress(jobflow.start(jobflow.make_job(epochs=10)), epoch=5),
                                              reason=EndReason.CONTINUATION, lost_seconds=0), start_epoch=5)
    assert "Continued in a new execution" in blocks.resumed(planned, 2).blocks[0]["text"]["text"]


def test_started_and_milestone_replies():
    job = jobflow.start(jobflow.make_job(epochs=4))
    assert "Started* on `cpu` after" in blocks.started(job).blocks[0]["text"]["text"]
    job = jobflow.progress(job, epoch=2, metrics={"mAP50-95": 0.2})
    text = blocks.milestone(job, 50, best_map=0.3).blocks[0]["text"]["text"]
    assert "*50%*" in text and "epoch 2/4" in text and "best mAP50-95 so far 0.300" in text


def test_fit_keeps_fifty_blocks_and_says_what_was_dropped():
    many = [blocks.section(f"b{i}") for i in range(80)]
    fitted = blocks.fit(many)
    assert len(fitted) == blocks.MAX_BLOCKS
    assert "31 more not shown" in json.dumps(fitted[-1])
    assert not validate_blocks(fitted)


def test_clip_and_button_limits():
    assert blocks.clip("abcdef", 4) == "abc\u2026"
    assert blocks.clip_tail("abcdef", 4) == "\u2026def"
    button = blocks.button("x" * 200, "a", value="v" * 5000, url="https://x/" + "u" * 4000)
    assert len(button["text"]["text"]) <= blocks.BUTTON_TEXT
    assert len(button["value"]) <= blocks.BUTTON_VALUE and len(button["url"]) <= blocks.BUTTON_URL


def test_card_renders_the_same_for_the_same_record():
    job = jobflow.progress(jobflow.start(jobflow.make_job()), epoch=1)
    assert plan.card_hash(job, "nvidia-l4") == plan.card_hash(job, "nvidia-l4")  # no wall clock in the card
    assert plan.card_hash(jobflow.progress(job, epoch=2), "nvidia-l4") != plan.card_hash(job, "nvidia-l4")


def test_ephemeral_answers_are_valid():
    jobs = [jobflow.make_job(custom_name=f"run {i}") for i in range(10)]
    for message in (blocks.help_message(), blocks.list_message(jobs), blocks.list_message([]),
                    blocks.submitted(jobs[0], True),
                    blocks.errors_message([FieldError("epochs", "x" * 4000)] * 50)):
        assert_valid(message)


def test_the_modal_is_valid_and_has_every_option_with_defaults():
    view = modal.view("C0TRAIN", "cpu")
    assert not validate_view(view), validate_view(view)
    assert len(view["title"]["text"]) <= 24
    ids = [b["block_id"] for b in view["blocks"]]
    assert ids == ["epochs", "arch", "batch", "lr", "imgsz", "dataset", "gpu", "name", "tags", "priority",
                   "max_cost"]
    by_id = {b["block_id"]: b["element"] for b in view["blocks"]}
    assert by_id["max_cost"]["is_decimal_allowed"] and "initial_value" not in by_id["max_cost"]  # no cap by default
    assert by_id["epochs"]["initial_value"] == "10"
    assert by_id["gpu"]["initial_option"]["value"] == "cpu"
    assert by_id["arch"]["initial_option"]["value"] == "yolo11n"
    assert json.loads(view["private_metadata"])["channel"] == "C0TRAIN"


def test_modal_errors_go_under_their_fields():
    with pytest.raises(OptionErrors) as caught:
        build_spec("T0LAXAI", {"epochs": ("epochs", "abc"), "lr": ("lr", "9")})
    response = modal.errors_response(caught.value)
    assert response["response_action"] == "errors"
    assert set(response["errors"]) == {"epochs", "lr"}
    assert "whole number" in response["errors"]["epochs"]
    orphan = modal.errors_response([FieldError("team", "is odd")])
    assert orphan["errors"] == {"epochs": "team: is odd"}  # no such block: shown on the first one

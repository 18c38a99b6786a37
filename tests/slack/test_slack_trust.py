"""The Slack user boundary (issue 14, finding 7), tried as an attacker would.

Inside one tenant (a Slack team): Retry, like Cancel, is for the job's submitter
and SLACK_ADMIN_USERS; ``/train status|cancel|retry ID`` and the buttons find only
jobs of the caller's channel or the caller's own, with one "not found" answer
whether the job is elsewhere or nowhere; SLACK_ALLOWED_CHANNELS gates buttons and
the form like the command; and user text never pings anyone in anything posted.

Real signed requests to the running app; what reached Slack is read back from the
fake Slack Web API's record of calls.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from pydantic import ValidationError

from bot import blocks, modal
from bot.config import SlackSettings, load_slack_settings
from orchestrator.domain.errors import FieldError
from orchestrator.domain.status import JobStatus
from orchestrator.serve import StartupError

from tests.slack import jobflow
from tests.slack.slack_env import ADMIN, ALICE, BOB, CHANNEL
from tests.slack.test_slack_http import ACK_LIMIT, all_jobs, card_of, has_button, wait_card

CAROL = "U0CAROL"
PRIVATE, PUBLIC = "C0PRIVATE", "C0PUBLIC"
NASTY_NAME = "@here <!channel> <@U123>"
# What Slack would turn into a notification: special mentions, user and group mentions,
# and bare @here/@channel/@everyone (linked when names are parsed).
SPECIAL = re.compile(r"<[!@#][^>]*>")
BARE = re.compile(r"(?<![\w@])@(here|channel|everyone)\b")
CALLERS = {f"<@{u}>" for u in (ALICE, BOB, ADMIN, CAROL)}  # the app's own mentions of real Slack users


def retries_of(service, task_id):
    return [j for j in all_jobs(service) if j.retry_of == task_id]


def failed_job(service, user=ALICE, channel=CHANNEL, name="flaky"):
    """A job submitted over /train, then failed; returns (job, its card with a Retry button)."""
    before = {j.task_id for j in all_jobs(service)}
    assert service.sender.command(f"epochs=2 name={name}", user=user, channel=channel).status == 200
    (job,) = [j for j in all_jobs(service) if j.task_id not in before]
    jobflow.fail(jobflow.start(service.store.get(job.task_id), service.store), service.store)
    return job, wait_card(service, job.task_id, has_button("laxai_retry"))


def answer(service, text, user, channel):
    """The whole ephemeral answer to /train ``text``, as JSON."""
    sent = service.sender.command(text, user=user, channel=channel)
    assert sent.status == 200 and sent.seconds < ACK_LIMIT
    return json.dumps(sent.json(), sort_keys=True)


def absent_ref(service, like: str) -> str:
    """A ref as long as ``like`` that matches no job at all."""
    ids = [j.task_id for j in all_jobs(service)]
    while True:
        ref = uuid.uuid4().hex[:len(like)] if len(like) < 36 else str(uuid.uuid4())
        if not any(i.startswith(ref) for i in ids):
            return ref


# -- retry: the submitter or an admin ------------------------------------------------------


def test_retry_button_of_another_user_is_refused_an_admins_is_allowed(inproc):
    original, card = failed_job(inproc)
    ephemerals = len(inproc.fake.ephemerals)
    refused = inproc.sender.click(card, "laxai_retry", user=BOB)
    assert refused.status == 200 and refused.seconds < ACK_LIMIT
    (note,) = inproc.fake.ephemerals[ephemerals:]
    assert note["user"] == BOB and note["channel"] == CHANNEL
    assert "Only <@U0ALICE>" in note["text"] and "can retry it" in note["text"]
    assert retries_of(inproc, original.task_id) == []

    assert inproc.sender.click(card, "laxai_retry", user=ADMIN).status == 200
    (retry,) = retries_of(inproc, original.task_id)
    assert retry.origin.user == ADMIN and retry.spec == original.spec
    assert len(inproc.fake.ephemerals) == ephemerals + 1  # the admin was not refused


def test_train_retry_of_another_users_job_is_refused_the_submitters_and_an_admins_allowed(inproc):
    original, _ = failed_job(inproc)
    short = original.task_id[:8]
    refused = inproc.sender.command(f"retry {short}", user=BOB)
    assert "Only <@U0ALICE>" in refused.text and "can retry it" in refused.text
    assert "Retrying" not in refused.text
    assert retries_of(inproc, original.task_id) == []

    assert "Retrying" in inproc.sender.command(f"retry {short}", user=ALICE).text
    assert "Retrying" in inproc.sender.command(f"retry {original.task_id}", user=ADMIN).text
    assert sorted(j.origin.user for j in retries_of(inproc, original.task_id)) == sorted([ALICE, ADMIN])


def test_a_retry_past_the_tenants_queued_cap_is_refused_with_the_limit_named(make_inproc):
    service = make_inproc(MAX_QUEUED_PER_TENANT="1")
    original, card = failed_job(service)
    service.sender.command("epochs=2 name=waiting", user=ALICE)  # the one queued job allowed
    refused = service.sender.command(f"retry {original.task_id[:8]}", user=ALICE).text
    assert "No retry was submitted" in refused and "MAX_QUEUED_PER_TENANT" in refused
    ephemerals = len(service.fake.ephemerals)
    assert service.sender.click(card, "laxai_retry", user=ALICE).status == 200
    (note,) = service.fake.ephemerals[ephemerals:]
    assert "MAX_QUEUED_PER_TENANT" in note["text"]
    assert retries_of(service, original.task_id) == []


# -- lookups: this channel's jobs or the caller's own, and no oracle --------------------------


def test_status_cancel_retry_from_another_channel_answer_exactly_like_a_missing_job(inproc):
    inproc.sender.command('epochs=2 name="secret plan"', user=ALICE, channel=PRIVATE)
    (job,) = all_jobs(inproc)
    jobflow.cancel(inproc.store.get(job.task_id), inproc.store)  # finished: retry would otherwise work
    for ref in (job.task_id[:8], job.task_id[:13], job.task_id):
        missing = absent_ref(inproc, ref)
        for verb in ("status", "cancel", "retry"):
            seen = answer(inproc, f"{verb} {ref}", BOB, PUBLIC)
            nothing = answer(inproc, f"{verb} {missing}", BOB, PUBLIC)
            assert seen.replace(ref, "REF") == nothing.replace(missing, "REF"), (verb, ref)
            assert "secret plan" not in seen and "No job" in seen
    assert retries_of(inproc, job.task_id) == []
    # The private channel's members see it, and so does its submitter from anywhere.
    assert "secret plan" in inproc.sender.command(f"status {job.task_id[:8]}", user=BOB, channel=PRIVATE).text
    assert "secret plan" in inproc.sender.command(f"status {job.task_id[:8]}", user=ALICE, channel=PUBLIC).text


def test_a_prefix_never_matches_a_job_of_another_channel(inproc):
    """Two jobs share an 8-character prefix; one is in a private channel the caller isn't in."""
    prefix = uuid.uuid4().hex[:8]
    hidden = jobflow.make_job(origin=jobflow.slack_origin(user=CAROL, channel=PRIVATE), custom_name="hidden")
    shown = jobflow.make_job(origin=jobflow.slack_origin(user=ALICE, channel=CHANNEL), custom_name="shown")
    for job, tail in ((hidden, "a"), (shown, "b")):
        inproc.store.create(job.model_copy(update={"task_id": f"{prefix}-0000-4000-8000-00000000000{tail}"}))
    found = inproc.sender.command(f"status {prefix}", user=BOB, channel=CHANNEL).text
    assert "shown" in found and "hidden" not in found and "matches" not in found
    elsewhere = answer(inproc, f"status {prefix}", BOB, PUBLIC)
    missing = absent_ref(inproc, prefix)
    assert elsewhere.replace(prefix, "REF") == answer(inproc, f"status {missing}", BOB, PUBLIC).replace(missing, "REF")
    cancelled = inproc.sender.command(f"cancel {prefix}", user=ALICE, channel=CHANNEL).text
    assert "Cancelling" in cancelled
    assert inproc.store.get(f"{prefix}-0000-4000-8000-00000000000a").status is JobStatus.QUEUED


# -- SLACK_ALLOWED_CHANNELS gates buttons and the form too -------------------------------------


def test_buttons_and_the_form_from_a_channel_not_allowed_are_refused(make_inproc):
    service = make_inproc(SLACK_ALLOWED_CHANNELS="C0TRAIN")
    service.sender.command("epochs=2 name=running", user=ALICE)
    (running,) = all_jobs(service)
    failed, failed_card = failed_job(service)
    ephemerals = len(service.fake.ephemerals)

    # The card's message as seen from a channel that is not (or no longer) allowed.
    assert service.sender.click(card_of(service, running.task_id), "laxai_cancel", user=ALICE,
                                channel="C0RANDOM").status == 200
    assert service.sender.click(failed_card, "laxai_retry", user=ALICE, channel="C0RANDOM").status == 200
    notes = service.fake.ephemerals[ephemerals:]
    assert len(notes) == 2 and all("isn't enabled in this channel" in n["text"] for n in notes)
    assert service.store.get(running.task_id).status is JobStatus.QUEUED
    assert retries_of(service, failed.task_id) == []

    service.sender.command("", user=ALICE)
    view = service.fake.views[-1]
    moved = {**view, "private_metadata": json.dumps({"channel": "C0RANDOM", "thread_ts": None})}
    before = len(all_jobs(service))
    refused = service.sender.submit_view(moved, {"epochs": "2"}, user=ALICE)
    assert refused.json()["response_action"] == "errors"
    assert "isn't enabled" in json.dumps(refused.json())
    assert len(all_jobs(service)) == before

    # The same clicks from the allowed channel work.
    assert service.sender.click(failed_card, "laxai_retry", user=ALICE).status == 200
    assert len(retries_of(service, failed.task_id)) == 1


# -- user text never pings ---------------------------------------------------------------------


def posted_texts(fake) -> list[str]:
    """Every text the app sent to Slack: message text and each text object in blocks."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for call in fake.calls:
        if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            walk({"text": call.args.get("text"), "blocks": call.args.get("blocks")})
    return found


def pings(text: str) -> list[str]:
    return [m for m in SPECIAL.findall(text) if m not in CALLERS] + BARE.findall(text)


def test_mentions_in_user_text_are_escaped_in_every_message(inproc):
    fake = inproc.fake
    replies = [inproc.sender.command(f'epochs=2 name="{NASTY_NAME}" tags=@everyone,<!subteam^S0ML|@ml>',
                                     user=ALICE)]
    (job,) = all_jobs(inproc)
    assert job.spec.custom_name == NASTY_NAME  # stored as typed; only its rendering is escaped
    jobflow.start(inproc.store.get(job.task_id), inproc.store)
    fake.wait_for(lambda: fake.by_metadata(job.task_id, "started"), what="started reply")
    jobflow.fail(inproc.store.get(job.task_id), inproc.store, message="boom @channel <!here> <@U999>",
                 tail=["@here look", "<!everyone> <!subteam^S0ML>"])
    fake.wait_for(lambda: fake.by_metadata(job.task_id, "final"), what="final reply")
    card = wait_card(inproc, job.task_id, has_button("laxai_retry"))
    replies += [inproc.sender.command(f"status {job.task_id[:8]}", user=ALICE), inproc.sender.command("list")]
    assert inproc.sender.click(card, "laxai_retry", user=ALICE).status == 200  # its card: "retry of", same name
    (retry,) = retries_of(inproc, job.task_id)
    assert inproc.sender.click(card_of(inproc, retry.task_id), "laxai_cancel", user=BOB).status == 200  # refused
    replies += [inproc.sender.command('name="<!channel>" <!here>=1 epochs=@here'),  # errors echo what was typed
                inproc.sender.command("dataset=/tmp/<!here>/@channel/data.yaml")]
    inproc.sender.command("", user=ALICE)
    form = inproc.sender.submit_view(fake.views[-1], {"name": "@channel <!here>", "epochs": "@here"})
    assert inproc.notifier.wait_idle(30)

    texts = posted_texts(fake) + [json.dumps(r.json()) for r in replies] + [json.dumps(form.json())]
    shown = blocks.escape(NASTY_NAME)  # the name is shown, escaped: in the header, the fallback, the confirm...
    assert shown == "@\u2060here &lt;!channel&gt; &lt;@\u2060U123&gt;"
    assert sum(shown in t for t in texts) >= 6
    assert any("&lt;!subteam^S0ML|@\u2060ml&gt;" in t for t in texts) and any("&lt;!here&gt;" in t for t in texts)
    assert len(fake.calls_to("chat.postMessage")) >= 4 and fake.ephemerals
    for text in texts:
        assert not pings(text), text
    for call in fake.calls:
        if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            assert call.args.get("parse") == "none" and str(call.args.get("link_names")).lower() in ("0", "false")


# -- pure rendering ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw, shown", [
    ("@here", "@\u2060here"),
    ("hi @channel!", "hi @\u2060channel!"),
    ("(@everyone)", "(@\u2060everyone)"),
    ("<!channel>", "&lt;!channel&gt;"),
    ("<!subteam^S1|@ml>", "&lt;!subteam^S1|@\u2060ml&gt;"),
    ("<@U123>", "&lt;@\u2060U123&gt;"),
    ("<https://evil|click>", "&lt;https://evil|click&gt;"),
    ("a&b", "a&amp;b"),
    ("me@example.com gs://b/x@v2", "me@example.com gs://b/x@v2"),  # not mentions: left alone
])
def test_escape(raw, shown):
    assert blocks.escape(raw) == shown
    assert not pings(blocks.escape(raw))


def test_plain_text_and_form_errors_are_escaped_too_and_links_only_for_plain_urls():
    job = jobflow.make_job(custom_name="@here <!here>")
    assert blocks.card(job).blocks[0]["text"]["text"].endswith("@\u2060here &lt;!here&gt;")  # the plain_text header
    errors = modal.errors_response([FieldError("name", "`@channel` is taken"), FieldError("x", "@everyone")])
    assert all(not pings(v) for v in errors["errors"].values())
    assert blocks.link("https://wandb.ai/a/b?x=1&y=2", "<!here>") == "<https://wandb.ai/a/b?x=1&amp;y=2|&lt;!here&gt;>"
    assert blocks.link("https://x> <!channel", "run") == "run"


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, value", [
    ("SLACK_ADMIN_USERS", "alice"),
    ("SLACK_ADMIN_USERS", "U0ADMIN, @bob"),
    ("SLACK_ALLOWED_CHANNELS", "#general"),
    ("SLACK_ALLOWED_CHANNELS", "C0TRAIN,U0ALICE"),
])
def test_a_bad_id_list_fails_at_start_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(StartupError) as caught:  # laxai serve prints it and exits 2
        load_slack_settings()
    assert f"{name}: " in str(caught.value) and "is not a Slack id" in str(caught.value)
    with pytest.raises(ValidationError):
        SlackSettings(**{name: value})


def test_id_lists_are_parsed_from_commas_or_json():
    settings = SlackSettings(SLACK_ADMIN_USERS=" U0A, u0b ,", SLACK_ALLOWED_CHANNELS='["C0X", "G0Y"]')
    assert settings.admin_users == {"U0A", "U0B"} and settings.allowed_channels == {"C0X", "G0Y"}
    assert SlackSettings(SLACK_ALLOWED_CHANNELS="").allowed_channels is None

"""Compare and promote in Slack: the completion reply compares the run with the best earlier version of its
model name and carries a Promote button for its submitter and admins; ``/train models`` lists versions.

Signed requests to the app in-process (the real extension, the notifier posting to the fake Slack), once
per backend (SQLite; Firestore emulator). Jobs move through the real transitions (tests/slack/jobflow.py);
the registry entry and the baseline are what the worker writes (worker/results.py, worker/baseline.py).
"""

from __future__ import annotations

from orchestrator.registry.base import ModelEntry
from tests.slack import jobflow
from tests.slack.slack_env import ADMIN, ALICE, BOB, CHANNEL
from tests.slack.test_slack_approval import action_ids, ephemerals_since, posted, text_of
from worker.baseline import baseline_of

TINY = "epochs=2 imgsz=64 dataset=synthetic:16 arch=yolov8n name=players"


def run(service, metrics: dict[str, float], user: str = ALICE):
    """A /train by ``user`` that completes with ``metrics``, registered as the worker registers it."""
    before = {j.task_id for j in service.store.list(limit=100)}
    assert service.sender.command(TINY, user=user).status == 200
    (job,) = [j for j in service.store.list(limit=100) if j.task_id not in before]
    job = jobflow.progress(jobflow.start(job, service.store), service.store, epoch=1)
    registry = service.runtime.backend.registry
    entry = registry.register(ModelEntry(
        tenant_id=job.tenant_id, name="players", task_id=job.task_id, architecture="yolov8n",
        checkpoint=f"/artifacts/{job.task_id}/best.pt", metrics=metrics, source="slack",
        submitted_by=job.origin.user, channel=job.origin.channel))
    artifacts = {"best_checkpoint": entry.checkpoint, "registry_name": entry.name,
                 "registry_version": entry.version,
                 "baseline": baseline_of(registry, service.runtime.backend.store, entry)}
    return jobflow.complete(job, service.store, metrics=metrics, artifacts=artifacts)


def production(service) -> tuple[int, str] | None:
    found = [(a.version, a.set_by) for a in service.runtime.backend.registry.aliases(jobflow.TEAM, "players")
             if a.alias == "production"]
    return found[0] if found else None


def test_the_reply_compares_and_only_the_submitter_or_an_admin_promotes(make_inproc):
    service = make_inproc()
    first = run(service, {"mAP50-95": 0.30, "mAP50": 0.50})
    second = run(service, {"mAP50-95": 0.25, "mAP50": 0.45})  # worse: the baseline stays v1
    third = run(service, {"mAP50-95": 0.42, "mAP50": 0.70})
    assert third.artifacts.baseline.version == 1 and third.artifacts.baseline.task_id == first.task_id
    reply = posted(service, third.task_id, "final")
    shown = text_of(reply)
    assert "Compared with v1 (best earlier, mAP50-95 0.300): mAP50-95 +0.120 \u00b7 mAP50 +0.200 \u00b7 cost " \
        in shown, shown
    assert "wall time" in shown
    assert "laxai_promote" in action_ids(reply)
    assert "Compared with" not in text_of(posted(service, first.task_id, "final"))  # v1 had nothing earlier
    assert "Compared with v1" in text_of(posted(service, second.task_id, "final"))

    seen = len(service.fake.ephemerals)
    assert service.sender.click(reply, "laxai_promote", user=BOB).status == 200  # a teammate
    refusal = service.fake.wait_for(lambda: ephemerals_since(service, seen, BOB) or None, timeout=10)
    assert "Only <@U0ALICE>" in refusal[0]["text"] and "or an admin can promote it" in refusal[0]["text"]
    assert production(service) is None  # nothing changed

    seen = len(service.fake.ephemerals)
    assert service.sender.click(reply, "laxai_promote", user=ALICE).status == 200  # its submitter
    done = service.fake.wait_for(lambda: ephemerals_since(service, seen, ALICE) or None, timeout=10)
    assert "v3 is now in production" in done[0]["text"]
    assert production(service) == (3, ALICE)

    seen = len(service.fake.ephemerals)
    older = posted(service, first.task_id, "final")
    assert service.sender.click(older, "laxai_promote", user=ADMIN).status == 200  # an admin rolls back
    back = service.fake.wait_for(lambda: ephemerals_since(service, seen, ADMIN) or None, timeout=10)
    assert "v1 is now in production (was v3)" in back[0]["text"]
    assert production(service) == (1, ADMIN)

    listed = service.sender.command("models players", user=BOB)  # anyone in the channel may look
    assert "in production: *v1*" in listed.text and "*v3* \u00b7 mAP50-95 0.420 \u00b7 mAP50 0.700" in listed.text
    assert listed.text.count(":rocket: *production*") == 1, listed.text
    elsewhere = service.sender.command("models", user=BOB, channel="C0OTHER")  # not his runs, not this channel
    assert "No registered models here yet" in elsewhere.text and "players" not in elsewhere.text
    mine = service.sender.command("models", user=ALICE, channel="C0OTHER")  # her own runs, from anywhere
    assert "players" in mine.text and CHANNEL not in mine.text

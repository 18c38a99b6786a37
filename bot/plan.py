"""What a job's Slack thread should hold now, given what was already posted.

Pure and level-triggered: from the job's current state and ``job.notify`` it
lists the messages still owed, in thread order. Intermediate states the
notifier never got to are dropped (a job that already finished gets its card and
final reply, not a late "started"; out-of-memory retries are the exception: they say why it
trained at a smaller batch). Keys name each message once and for all, so
a restart or a duplicate event can never make the same message owed twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator.domain.job import EndReason, Job
from orchestrator.domain.oom import retries as oom_retries
from orchestrator.domain.status import JobStatus

from bot import approval, blocks, curves, oom_blocks

# Lower runs first: a final word beats news, news beats a refreshed card.
FINAL, LIFECYCLE, UPDATE = 0, 1, 2
MILESTONES = (25, 50, 75)


@dataclass(frozen=True)
class Step:
    """One message the thread still needs."""

    key: str  # "card", "started", "resumed:2", "oom:1", "milestone:50", "final"
    priority: int


def posted(job: Job) -> dict[str, Any]:
    return dict(job.notify.get("posted") or {})


def settled(job: Job) -> set[str]:
    """Keys that need nothing more: posted, or given up on."""
    return set(posted(job)) | set(job.notify.get("gave_up") or {})


def highest_milestone(keys: set[str]) -> int:
    return max((int(k.split(":", 1)[1]) for k in keys if k.startswith("milestone:")), default=0)


def crossed_milestone(percent: float) -> int:
    return max((m for m in MILESTONES if percent >= m), default=0)


def due(job: Job) -> list[Step]:
    """Messages owed to the job's thread, in the order they must appear."""
    done = settled(job)
    if "card" in (job.notify.get("gave_up") or {}):
        return []  # no card, no thread to post in
    terminal = job.status.is_terminal()
    steps = []
    if "card" not in done:
        # Everything else threads under the card, so it inherits the most urgent priority.
        steps.append(Step("card", FINAL if terminal else LIFECYCLE))
    if terminal:
        # A request shown gets its answer, even when the job finished before the notifier got to it.
        if was_approved(job) and "approval" in posted(job) and "decision" not in done:
            steps.append(Step("decision", FINAL))
        steps.extend(oom_steps(job, done, FINAL))  # the story of its batch stays in the thread
        if "final" not in done:
            steps.append(Step("final", FINAL))
        return steps + closing(job, done) + curves_step(job, done)
    steps.extend(approval_steps(job, done))
    steps.extend(oom_steps(job, done, LIFECYCLE))
    current = job.current_attempt
    live = current is not None and current.started_at is not None and current.ended_at is None
    if live and current.number == 1 and "started" not in done:
        steps.append(Step("started", LIFECYCLE))
    if live and current.number > 1:
        previous = job.attempts[current.number - 2]
        key = f"resumed:{current.number}"
        # After running out of memory the oom: reply said it, and what the batch is now.
        if previous.end_reason is not None and previous.end_reason.resumes and key not in done \
                and previous.end_reason is not EndReason.OUT_OF_MEMORY:
            steps.append(Step(key, LIFECYCLE))
    if live and job.status is JobStatus.RUNNING:
        reached = crossed_milestone(job.progress.progress_percent)
        if reached > highest_milestone(done):
            steps.append(Step(f"milestone:{reached}", LIFECYCLE))
    return steps


def oom_steps(job: Job, done: set[str], priority: int) -> list[Step]:
    """One reply per out-of-memory retry (orchestrator/domain/oom.py), keyed by the execution that ran out:
    ``oom:N``. Owed once the job is requeued with the smaller batch, and still after it finished."""
    keys = (f"oom:{retry.attempt.number}" for retry in oom_retries(job))
    return [Step(key, priority) for key in keys if key not in done]


def was_approved(job: Job) -> bool:
    return job.approval is not None and job.approval.decision == "approved"


def approval_steps(job: Job, done: set[str]) -> list[Step]:
    """A job held over a budget: the request while it waits, then the approval (bot/approval.py)."""
    steps = []
    if job.status is JobStatus.AWAITING_APPROVAL and "approval" not in done:
        steps.append(Step("approval", LIFECYCLE))
    if was_approved(job) and "decision" not in done:
        steps.append(Step("decision", LIFECYCLE))
    return steps + closing(job, done)


def closing(job: Job, done: set[str]) -> list[Step]:
    """The posted request loses its buttons once the wait is over: an edit of that message, keyed
    ``approval_closed`` so it is done once (bot/notifier/steps.py ``close_request``)."""
    if approval.closed(job) and "approval" in posted(job) and "approval_closed" not in done:
        return [Step("approval_closed", LIFECYCLE)]
    return []


def curves_step(job: Job, done: set[str]) -> list[Step]:
    """A finished job that trained an epoch or more gets one picture of its curves, after its final
    reply (thread order: the final word never waits for a picture); bot/curves.py, bot/notifier/uploads.py."""
    if job.epochs and curves.KEY not in done:
        return [Step(curves.KEY, LIFECYCLE)]
    return []


def render(job: Job, key: str, best_map: float | None = None, default_gpu: str = "nvidia-l4") -> blocks.Message:
    """The message for ``key`` as of the job's current state (the latest state wins)."""
    if key == "card":
        return blocks.card(job, default_gpu)
    if key in ("approval", "approval_closed"):
        return approval.request(job)
    if key == "decision":
        return approval.approved(job)
    if key == "final":
        message = approval.rejected(job) if approval.was_rejected(job) else blocks.final(job)
        return with_stop_note(message, job) if job.status is JobStatus.CANCELLED else message
    if key == "started":
        return blocks.started(job)
    if key.startswith("oom:"):
        return oom_blocks.retried(job, int(key.split(":", 1)[1]))
    if key.startswith("resumed:"):
        return blocks.resumed(job, int(key.split(":", 1)[1]))
    if key.startswith("milestone:"):
        return blocks.milestone(job, int(key.split(":", 1)[1]), best_map)
    if key == curves.KEY:
        return curves.caption(job)  # the upload's comment; the picture is drawn where it is uploaded
    raise ValueError(f"unknown message key {key!r}")


def stop_note(job: Job, when: Callable[[datetime | None], str] | None = None) -> str:
    """When a cancelled job's GPU stopped billing, for its final reply (13R): the time the dispatcher
    saw the execution it stopped end, else the worker's own close, else that it is not confirmed.
    ``when`` writes a time (default: Slack's date markup, ``plain_time`` for the fallback text)."""
    when = when or slack_time
    attempt = job.current_attempt
    if attempt is None or attempt.started_at is None:
        return "No GPU time was billed: it never started."
    if attempt.stopped_at is not None:
        return f"GPU stopped billing at {when(attempt.stopped_at)} (execution seen stopped)."
    if attempt.end_reason is EndReason.CANCELLED:
        return f"GPU stopped billing at {when(attempt.ended_at)} (the worker stopped itself)."
    return (f"The worker stopped reporting; its execution is not confirmed stopped (billed until "
            f"{when(attempt.ended_at)}; the stop is still being asked for).")


def plain_time(at: datetime | None) -> str:
    return f"{at:%H:%M:%S} UTC" if at is not None else "an unknown time"


def slack_time(at: datetime | None) -> str:
    """A time each reader sees in their own zone; UTC where Slack cannot render it."""
    if at is None:
        return plain_time(at)
    return f"<!date^{int(at.timestamp())}^{{time_secs}}|{plain_time(at)}>"


def with_stop_note(message: blocks.Message, job: Job) -> blocks.Message:
    """The cancelled reply with its stop note added to the first section and to the fallback text."""
    first, *rest = message.blocks
    section = blocks.section(f"{first['text']['text']}\n{stop_note(job)}")
    fallback = blocks.clip(f"{message.text} {stop_note(job, plain_time)}", blocks.FALLBACK_TEXT)
    return replace(message, text=fallback, blocks=[section, *rest])


def card_hash(job: Job, default_gpu: str) -> str:
    """Fingerprint of the card as it would render now; equal hashes need no chat.update."""
    message = blocks.card(job, default_gpu)
    raw = json.dumps([message.text, message.blocks], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(raw.encode()).hexdigest()


def finished_with(job: Job, pushed_hash: str | None, default_gpu: str) -> bool:
    """Nothing more will ever be needed for this job (until something changes it)."""
    return (job.status.is_terminal() and not due(job)
            and (pushed_hash or job.notify.get("card_done")) == card_hash(job, default_gpu))

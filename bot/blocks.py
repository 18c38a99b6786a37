"""Block Kit for jobs: the card, thread replies, and the ephemeral answers to /train.

Pure functions of a Job (no I/O), so the notifier can render the latest state at
send time and tests can check every message against Block Kit's limits. Text
that users control (run names, tags, datasets, error output) reaches Slack only
through ``escape``, in mrkdwn and plain_text alike, so it can never mention anyone
(``<!channel>``, ``<@U…>``, a bare ``@here``) or break formatting, and everything
is clipped to Slack's limits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.domain.cost import format_usd
from orchestrator.domain.cost_cap import stopped_for_budget
from orchestrator.domain.cost_split import split_attempt, split_text, worth_showing
from orchestrator.domain.durations import duration
from orchestrator.domain.estimate import describe as describe_estimate
from orchestrator.domain.eta import eta_line, eta_of
from orchestrator.domain.errors import FieldError
from orchestrator.domain.job import EndReason, Job
from orchestrator.domain.model_versions import comparison
from orchestrator.domain.lineage import describe as describe_changes
from orchestrator.domain.status import JobStatus

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks).
MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
CONTEXT_ELEMENTS = 10
FALLBACK_TEXT = 3000  # chat.postMessage allows 40k; a notification preview needs far less

CANCEL_ACTION = "laxai_cancel"
RETRY_ACTION = "laxai_retry"
RETRY_CHANGES_ACTION = "laxai_retry_changes"  # opens the form prefilled (bot/listeners/retry_changes.py)
WANDB_ACTION = "laxai_wandb"
PROMOTE_ACTION = "laxai_promote"  # the completion reply's Promote (bot/listeners/models.py)

STATUS_EMOJI = {
    JobStatus.QUEUED: ":hourglass_flowing_sand:",
    JobStatus.AWAITING_APPROVAL: ":raised_hand:",
    JobStatus.RUNNING: ":runner:",
    JobStatus.CANCELLING: ":octagonal_sign:",
    JobStatus.COMPLETED: ":white_check_mark:",
    JobStatus.FAILED: ":x:",
    JobStatus.CANCELLED: ":no_entry_sign:",
}
STATUS_WORD = {
    JobStatus.QUEUED: "Queued",
    JobStatus.AWAITING_APPROVAL: "Awaiting approval",
    JobStatus.RUNNING: "Running",
    JobStatus.CANCELLING: "Cancelling",
    JobStatus.COMPLETED: "Completed",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELLED: "Cancelled",
}
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
SLACK_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,}")
# A bare "@here", "@channel", "@everyone" (or "@someone", "@a-group") becomes a mention
# wherever Slack links names (link_names, parse=full, some clients and integrations);
# a word joiner after the "@" keeps it looking the same but plain text.
BARE_MENTION = re.compile(r"(?<![\w@])@(?=\w)")
WORD_JOINER = "\u2060"
SAFE_URL = re.compile(r"https?://[^\s<>|]+")
# Sent with every message: no name linking on Slack's side either (its default, said out loud).
NO_PARSING: dict[str, Any] = {"parse": "none", "link_names": False}


@dataclass(frozen=True)
class Message:
    """What to post: a fallback text (notifications, screen readers) plus blocks."""

    text: str
    blocks: list[dict[str, Any]]


# -- text helpers -------------------------------------------------------------


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "\u2026"


def clip_tail(text: str, limit: int) -> str:
    """The end of ``text`` (error output matters most at its end)."""
    return text if len(text) <= limit else "\u2026" + text[-(limit - 1):]


def escape(text: object) -> str:
    """The one way user text goes to Slack: mrkdwn, plain_text, fallback text, form errors.

    ``&``, ``<`` and ``>`` become entities, as Slack's formatting reference asks of
    every text object, so ``<!channel>``, ``<!subteam^…>``, ``<@U…>`` and ``<url|label>``
    stay text; a bare @mention gets a word joiner, whatever Slack's name linking does.
    """
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return BARE_MENTION.sub("@" + WORD_JOINER, text)


def link(url: str | None, label: str) -> str:
    """``<url|label>`` for a plain http(s) URL; otherwise only the (escaped) label."""
    if url and SAFE_URL.fullmatch(url):
        return f"<{url.replace('&', '&amp;')}|{escape(label)}>"
    return escape(label)


def user_ref(user: str | None) -> str:
    """<@U123> for Slack user ids; other submitters (API, CLI) as plain text."""
    if not user:
        return "someone"
    return f"<@{user}>" if SLACK_USER.fullmatch(user) else escape(user)


def short_id(task_id: str) -> str:
    return task_id[:8]


def between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def progress_bar(percent: float, width: int = 20) -> str:
    percent = min(100.0, max(0.0, percent or 0.0))
    filled = int(round(percent / 100 * width))
    return "\u2588" * filled + "\u2591" * (width - filled) + f" {percent:.0f}%"


def thread_link(channel: str | None, ts: str | None) -> str | None:
    """A link to a message; Slack redirects it into the right workspace."""
    if not channel or not ts:
        return None
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


# -- metrics ------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def metric(metrics: dict[str, float], kind: str) -> float | None:
    """A metric whatever the worker calls it ("metrics/mAP50-95(B)", "map50_95", "map")."""
    for name, value in metrics.items():
        key = _norm(name)
        if key.startswith("best") or key.startswith("val"):
            continue
        if kind == "map50_95" and ("map5095" in key or key in ("map", "metricsmap")):
            return value
        if kind == "map50" and "map50" in key and "map5095" not in key:
            return value
        if kind in ("precision", "recall") and kind in key:
            return value
    return None


def metrics_line(job: Job, best_map: float | None = None) -> str:
    parts = []
    if job.progress.loss is not None:
        parts.append(f"loss {job.progress.loss:.4g}")
    for kind, label in (("map50_95", "mAP50-95"), ("map50", "mAP50"), ("precision", "precision"),
                        ("recall", "recall")):
        value = metric(job.metrics, kind)
        if value is not None:
            parts.append(f"{label} {value:.3f}")
    if best_map is not None:
        parts.append(f"best mAP50-95 so far {best_map:.3f}")
    return " \u00b7 ".join(parts)


def best_map_of(job: Job) -> float | None:
    """The best mAP50-95 the worker reported, when it reports one."""
    for name, value in job.metrics.items():
        key = _norm(name)
        if key.startswith("best") and "map5095" in key:
            return value
    return None


# -- cost -----------------------------------------------------------------------


def cost_so_far(job: Job) -> float:
    """Billed so far; a running attempt counts up to the job's last update at its rate.

    Not up to *now*: the card must render the same for the same record, or every
    look at it would look like a change worth a chat.update.
    """
    if job.status.is_terminal() or job.cost.usd_per_second <= 0:
        return job.cost.usd
    seconds = 0.0
    for attempt in job.attempts:
        if attempt.started_at is not None:
            seconds += between(attempt.started_at, attempt.ended_at or job.updated_at) or 0.0
    return max(job.cost.usd, round(seconds * job.cost.usd_per_second, 6))


def cost_text(job: Job, final: bool = False) -> str:
    usd = job.cost.usd if final else cost_so_far(job)
    text = f"{format_usd(usd)}"
    if job.cost.gpu_type:
        text += f" on {job.cost.gpu_type}"
    if job.cost.estimate_usd is not None and job.cost.estimate_gpu_type:
        text += f" (\u2248 {format_usd(job.cost.estimate_usd)} on {job.cost.estimate_gpu_type})"
    return text


# -- blocks -----------------------------------------------------------------------


def cost_lines(job: Job) -> list[str]:
    """The card's cost: what it cost so far (once it ran), and what it was estimated to cost at submit."""
    lines = []
    if job.attempts or job.cost.usd:
        label = "Cost" if job.status.is_terminal() else "Cost so far"
        lines.append(f"{label}: {cost_text(job, final=job.status.is_terminal())}")
    if job.estimate is not None:
        lines.append(f"Estimate: {escape(describe_estimate(job.estimate))}")
    return lines


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_TEXT)}}


def context(*texts: str) -> dict[str, Any]:
    elements = [{"type": "mrkdwn", "text": clip(t, SECTION_TEXT)} for t in texts if t][:CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements}


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(escape(text), HEADER_TEXT), "emoji": True}}


def button(text: str, action_id: str, value: str | None = None, style: str | None = None,
           url: str | None = None, confirm: dict[str, Any] | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "action_id": action_id,
                               "text": {"type": "plain_text", "text": clip(text, BUTTON_TEXT), "emoji": True}}
    if value is not None:
        element["value"] = value[:BUTTON_VALUE]
    if style:
        element["style"] = style
    if url:
        element["url"] = url[:BUTTON_URL]
    if confirm:
        element["confirm"] = confirm
    return element


def fit(blocks: list[dict[str, Any]], limit: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    """At most ``limit`` blocks; the last kept one says how many were dropped."""
    if len(blocks) <= limit:
        return blocks
    kept = blocks[: limit - 1]
    return [*kept, context(f"\u2026 {len(blocks) - len(kept)} more not shown")]


def retry_value(job: Job) -> str:
    """Button value for Retry: the job and how many retries the card knew of, so a
    double click makes one job and a deliberate later click makes another."""
    return json.dumps({"task": job.task_id, "n": len(job.notify.get("retries", []))}, separators=(",", ":"))


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip(f"*{label}*\n{value}", FIELD_TEXT)}


def status_line(job: Job) -> str:
    word = STATUS_WORD[job.status]
    line = f"{STATUS_EMOJI[job.status]} *{word}*"
    # A held job's note (status_note) names its budget better than its progress message does.
    message = job.progress.message if job.status is not JobStatus.AWAITING_APPROVAL else None
    if message and message.lower() != word.lower():
        line += f" \u2014 {escape(message)}"
    return line


def money(usd: float) -> str:
    """$50 for whole dollars (a budget's limit as people set it), else as ``format_usd``: $48.20, $0.0050."""
    return f"${usd:,.0f}" if float(usd).is_integer() else format_usd(usd)


def budget_owner(scope: str, key: str) -> str:
    """Whose budget, as Slack shows it: a channel and a user as mentions, a tenant as text."""
    if scope == "channel" and SLACK_CHANNEL.fullmatch(key):
        return f"channel <#{key}>"
    if scope == "user" and SLACK_USER.fullmatch(key):
        return f"user <@{key}>"
    return f"{escape(scope)} `{escape(key)}`"


def status_note(job: Job) -> str | None:
    """What the status line adds: a queued job's place in line (kept current by the notifier,
    bot/notifier/queue_cards.py), or the budget a job awaiting approval is held by (bot/approval.py)."""
    if job.status is JobStatus.QUEUED:
        place = job.notify.get("queue")
        return escape(place) if place else None
    if job.status is not JobStatus.AWAITING_APPROVAL or not job.approval or not job.approval.budgets:
        return None
    first, others = job.approval.budgets[0], len(job.approval.budgets) - 1
    more = f" (+{others} more)" if others else ""
    return (f"over {budget_owner(first.scope, first.key)}'s {money(first.limit_usd)}/{first.period} budget{more}"
            " \u00b7 an admin can approve it")


def card(job: Job, default_gpu: str = "nvidia-l4", with_actions: bool = True) -> Message:
    """The job's card: what it is, where it is, what it cost, and buttons."""
    spec = job.spec
    tp, mp = spec.training_params, spec.model_params
    total = job.progress.total_epochs or tp.epochs
    lines = [status_line(job)]
    note = status_note(job)
    if note:
        lines[0] += f" \u00b7 {note}"
    if job.status not in (JobStatus.QUEUED, JobStatus.AWAITING_APPROVAL) or job.progress.epoch:
        lines.append(f"`{progress_bar(job.progress.progress_percent)}`  epoch {job.progress.epoch}/{total}")
    eta = eta_of(job)  # the record's own figures, not the clock's: the same record, the same card
    if eta is not None:
        lines.append(eta_line(eta))
    figures = metrics_line(job)
    if figures:
        lines.append(figures)
    lines.extend(cost_lines(job))
    lines.extend(ending_lines(job))
    gpu = spec.gpu_type or default_gpu
    device = job.current_attempt.device if job.current_attempt and job.current_attempt.device else None
    fields = [
        _field("Architecture", escape(mp.architecture)),
        _field("Epochs", str(tp.epochs)),
        # After running out of memory it trains with a smaller batch than asked (orchestrator/domain/oom.py).
        _field("Batch", str(tp.batch_size) if job.batch_size == tp.batch_size else
               f"{job.batch_size} (asked {tp.batch_size}; out of memory)"),
        _field("Learning rate", f"{tp.learning_rate:g}"),
        _field("Image size", f"{mp.input_size}px"),
        _field("Dataset", f"`{escape(clip(spec.dataset, 200))}`"),
        _field("GPU", escape(gpu) + (f" (on {escape(device)})" if device else "")),
        _field("Submitted by", user_ref(job.origin.user)),
        _field("Priority", str(spec.priority)),
        _field("Job", f"`{short_id(job.task_id)}`"),
    ][:MAX_FIELDS]
    blocks: list[dict[str, Any]] = [
        header(f"\U0001f3cb\ufe0f {spec.display_name}"),
        section("\n".join(lines)),
        {"type": "section", "fields": fields},
    ]
    notes = [f"ID `{job.task_id}`"]
    if job.retry_of:
        notes.append(f":repeat: retry of `{short_id(job.retry_of)}`")
    retries = job.notify.get("retries") or []
    if retries:
        notes.append(":repeat: retried as " + ", ".join(f"`{short_id(r)}`" for r in retries[-5:]))
    if spec.wandb_tags:
        notes.append("tags: " + ", ".join(escape(t) for t in spec.wandb_tags))
    blocks.append(context(*notes))
    if with_actions:
        actions = card_actions(job)
        if actions:
            blocks.append({"type": "actions", "block_id": "laxai_job_actions", "elements": actions})
    # The fallback text is what notifications show, and Slack parses mentions there too.
    text = f"{escape(spec.display_name)}: {STATUS_WORD[job.status].lower()} (epoch {job.progress.epoch}/{total})"
    return Message(clip(text, FALLBACK_TEXT), fit(blocks))


def ending_lines(job: Job) -> list[str]:
    """The card's lines on how the job ended (why it failed, who or what stopped it), and its lineage."""
    lines = []
    if job.status is JobStatus.FAILED and job.error:
        lines.append(f"*Why:* {escape(job.error.message)}")
    if stopped_for_budget(job):
        lines.append(f"Stopped: {escape(job.cancel.detail or 'a budget ran out')}")
    elif job.status is JobStatus.CANCELLED and job.cancel:
        lines.append(f"Cancelled by {user_ref(job.cancel.by)}")
    lineage = lineage_line(job)
    return [*lines, lineage] if lineage else lines


LINEAGE_TEXT = 1500  # of the card's 3000: the newest versions are kept when a chain is long


def lineage_line(job: Job) -> str | None:
    """A retry's chain and what each version changed: ``v1 `0599de49` → v2 `1a2b3c4d` (epochs 3→10)
    → *v3 (this run)* (lr 0.001→0.0005)``; None for a job that retries nothing."""
    lineage = job.lineage
    if lineage is None:
        return None

    def changes(number: int, changed: list[Any]) -> str:
        return f" ({escape(describe_changes(changed))})" if number > 1 else ""

    parts = ["\u2026"] if lineage.earlier and lineage.earlier[0].number > 1 else []
    parts += [f"v{v.number} `{short_id(v.task_id)}`{changes(v.number, v.changes)}" for v in lineage.earlier]
    parts.append(f"*v{lineage.number} (this run)*{changes(lineage.number, lineage.changes)}")
    return clip_tail(":dna: " + " \u2192 ".join(parts), LINEAGE_TEXT)


def card_actions(job: Job) -> list[dict[str, Any]]:
    actions = []
    if job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.AWAITING_APPROVAL):
        confirm = {
            "title": {"type": "plain_text", "text": "Cancel this job?"},
            "text": {"type": "mrkdwn", "text": clip(f"Stop *{escape(job.spec.display_name)}*? "
                                                    "The last checkpoint is kept.", 300)},
            "confirm": {"type": "plain_text", "text": "Cancel job"},
            "deny": {"type": "plain_text", "text": "Keep running"},
            "style": "danger",
        }
        actions.append(button("Cancel", CANCEL_ACTION, job.task_id, style="danger", confirm=confirm))
    if job.status.is_terminal():
        actions.append(button("Retry", RETRY_ACTION, retry_value(job), style="primary"))
        actions.append(button("Retry with changes", RETRY_CHANGES_ACTION, job.task_id))
    if job.artifacts.wandb_url and job.artifacts.wandb_url.startswith(("https://", "http://")):
        actions.append(button("Open in W&B", WANDB_ACTION, job.task_id, url=job.artifacts.wandb_url))
    return actions


# -- thread replies -------------------------------------------------------------


def reply(text: str, *extra: dict[str, Any]) -> Message:
    """A thread reply: one section (plus extra blocks), fallback text without markup."""
    plain = re.sub(r"[*`]", "", text.split("\n", 1)[0])
    return Message(clip(plain, FALLBACK_TEXT), fit([section(text), *extra]))


def started(job: Job) -> Message:
    first = job.attempts[0] if job.attempts else None
    wait = between(job.created_at, first.started_at or first.claimed_at) if first else None
    where = f" on `{escape(first.device)}`" if first and first.device else ""
    return reply(f":arrow_forward: *Started*{where} after {duration(wait)} in the queue.")


def milestone(job: Job, percent: int, best_map: float | None) -> Message:
    total = job.progress.total_epochs or job.spec.training_params.epochs
    parts = [f":chart_with_upwards_trend: *{percent}%* \u2014 epoch {job.progress.epoch}/{total}"]
    figures = metrics_line(job, best_map)
    if figures:
        parts.append(figures)
    parts.append(f"{format_usd(cost_so_far(job))} so far")
    return reply(" \u00b7 ".join(parts))


RESUME_WORDS = {
    EndReason.INTERRUPTED: ":warning: *Interrupted*",
    EndReason.LEASE_EXPIRED: ":warning: *Worker lost*",
    EndReason.LAUNCH_FAILED: ":warning: *Launch failed*",
    EndReason.CONTINUATION: ":fast_forward: *Continued in a new execution* (planned, before the time limit)",
    EndReason.STALLED: ":hourglass: *Stalled*",
}
# What to try when a resume keeps happening (the others need nothing from the user).
RESUME_HINTS = {
    EndReason.STALLED: ("The worker was alive but its training loop stopped moving (a hung data loader or device), "
                        "so it was stopped and restarted; this counts against MAX_RECOVERIES. If it stalls again, "
                        "check the dataset's storage and the GPU, or try a smaller batch_size."),
}


def resumed(job: Job, number: int) -> Message:
    """Attempt ``number`` (>= 2) started after the one before it ended early."""
    previous, current = job.attempts[number - 2], job.attempts[number - 1]
    total = job.progress.total_epochs or job.spec.training_params.epochs
    epoch = previous.end_epoch if previous.end_epoch is not None else current.start_epoch
    words = RESUME_WORDS.get(previous.end_reason, ":warning: *Stopped*")
    text = f"{words} at epoch {epoch}/{total}"
    if previous.detail:
        text += f" ({escape(clip(previous.detail, 300))})"
    text += f", resumed from checkpoint at epoch {current.start_epoch}"
    # A lost worker recorded no loss of its own: the cost split's rule says what it was.
    lost_seconds = previous.lost_seconds if previous.lost_seconds is not None else split_attempt(previous).lost
    if lost_seconds:
        lost = lost_seconds * job.cost.usd_per_second
        text += f", lost {duration(lost_seconds)} ({format_usd(lost)})"
    hint = RESUME_HINTS.get(previous.end_reason)
    return reply(text + "." + (f"\n{hint}" if hint else ""))


def completed(job: Job) -> Message:
    wall = between(job.started_at or job.created_at, job.finished_at)
    lines = [f":white_check_mark: *Completed* *{escape(job.spec.display_name)}* in {duration(wall)}."]
    figures = metrics_line(job)
    if figures:
        lines.append(f"\u2022 Metrics: {figures}")
    art = job.artifacts
    if art.registry_name:
        version = f" v{art.registry_version}" if art.registry_version is not None else ""
        lines.append(f"\u2022 Model: `{escape(art.registry_name)}`{version}")
    checkpoint = art.best_checkpoint or art.last_checkpoint
    if checkpoint:
        lines.append(f"\u2022 Checkpoint: `{escape(clip(checkpoint, 500))}`")
    if art.wandb_url:
        lines.append(f"\u2022 W&B: {link(art.wandb_url, art.wandb_run or 'run')}")
    # "GPU time" only when it ran on one; a laptop CPU run is billed compute time.
    compute = "CPU time" if job.cost.gpu_type == "cpu" else "GPU time"
    lines.append(f"\u2022 Wall time {duration(wall)} \u00b7 {compute} {duration(job.cost.billed_seconds)} "
                 f"\u00b7 Cost {cost_text(job, final=True)}")
    if worth_showing(job.cost):  # where the money went, when a fair share of it was not training
        lines.append(f"\u2022 Cost {format_usd(job.cost.usd)}: {escape(split_text(job.cost))}")
    if art.baseline is not None:  # the best earlier version of this name (orchestrator/domain/model_versions.py)
        lines.append(f"\u2022 Compared with {comparison(art.baseline, job.metrics, job.cost.usd, wall)}")
    return reply("\n".join(lines), *promote_actions(job))


def promote_actions(job: Job) -> list[dict[str, Any]]:
    """The Promote button of a registered model's completion reply (bot/listeners/models.py)."""
    if not job.artifacts.registry_name or job.artifacts.registry_version is None:
        return []
    return [{"type": "actions", "block_id": "laxai_model_actions",
             "elements": [button(f"Promote v{job.artifacts.registry_version} to production", PROMOTE_ACTION,
                                 job.task_id, style="primary")]}]


# Failure reasons said in words first (the others show as "reason: message").
FAILURE_WORDS = {
    "gpu_unavailable": "no GPU, so it stopped rather than train on the CPU",
    "launch_failed": "no worker could be started",
    "bad_weights": "its weights were refused (not the tenant's, unavailable, or not a safe checkpoint)",
    "diverged": "training diverged (a NaN or infinite loss) and was stopped within that batch",
    "out_of_memory": "out of memory, with no smaller batch left to retry",
}


def failed(job: Job) -> Message:
    error = job.error
    reason = f"{error.reason}: {error.message}" if error else "no reason recorded"
    if error and error.reason in FAILURE_WORDS:
        reason = f"{FAILURE_WORDS[error.reason]} ({reason})"
    head = f":x: *Failed* at epoch {job.progress.epoch}/{job.progress.total_epochs}: {escape(clip(reason, 1000))}"
    head += f"\nCost {cost_text(job, final=True)}"
    extra = []
    if error and error.tail:
        room = SECTION_TEXT - 8
        tail = escape("\n".join(error.tail[-30:])).replace("```", "'''")
        extra.append(section("```" + clip_tail(tail, room) + "```"))
    return reply(head, *extra)


def cancelled(job: Job) -> Message:
    if stopped_for_budget(job):  # its cost cap or a budget: say what was spent, and that Retry goes on
        why = job.cancel.detail or "stopped by a budget"
        return reply(f":money_with_wings: *Stopped* at epoch {job.progress.epoch}/{job.progress.total_epochs}: "
                     f"{escape(why)}. Cost {cost_text(job, final=True)}. The checkpoint is kept: *Retry* "
                     "continues from it.")
    who = user_ref(job.cancel.by) if job.cancel else "someone"
    return reply(f":no_entry_sign: *Cancelled* by {who} at epoch {job.progress.epoch}/{job.progress.total_epochs}. "
                 f"Cost {cost_text(job, final=True)}.")


def final(job: Job) -> Message:
    if job.status is JobStatus.COMPLETED:
        return completed(job)
    if job.status is JobStatus.FAILED:
        return failed(job)
    return cancelled(job)


# -- ephemeral answers ------------------------------------------------------------


def errors_message(errors: list[FieldError], what: str = "Nothing was submitted.") -> Message:
    lines = [f"\u2022 *{escape(e.field)}*: {escape(e.message)}" if e.field else f"\u2022 {escape(e.message)}"
             for e in errors[:40]]
    text = ":warning: That didn't work:\n" + "\n".join(lines) + f"\n{what} See `/train help`."
    fallback = "That didn't work: " + "; ".join(escape(e) for e in errors)
    return Message(clip(fallback, FALLBACK_TEXT), [section(text)])


def notice(text: str) -> Message:
    return Message(clip(re.sub(r"[*`]", "", text), FALLBACK_TEXT), [section(text)])


def submitted(job: Job, created: bool) -> Message:
    spec = job.spec
    tp, mp = spec.training_params, spec.model_params
    verb = "Queued" if created else "Already queued"
    text = (f":inbox_tray: {verb} *{escape(spec.display_name)}* (`{short_id(job.task_id)}`): "
            f"{escape(mp.architecture)}, {tp.epochs} epochs, batch {tp.batch_size}, lr {tp.learning_rate:g}, "
            f"{mp.input_size}px, dataset `{escape(clip(spec.dataset, 200))}`. "
            "Its card and progress will appear in this channel.")
    if job.estimate is not None:
        text += f"\nEstimate: {escape(describe_estimate(job.estimate))}"
    return notice(text)


def status_message(job: Job, default_gpu: str) -> Message:
    message = card(job, default_gpu, with_actions=False)
    link = thread_link(job.origin.channel, job.origin.thread_ts or job.notify.get("card_ts"))
    blocks = list(message.blocks)
    if link:
        blocks.append(context(f"<{link}|Open the job's thread>"))
    return Message(message.text, fit(blocks))


def list_message(jobs: list[Job]) -> Message:
    if not jobs:
        return notice("No jobs in this channel yet. Start one with `/train epochs=10 arch=yolo`.")
    lines = []
    for job in jobs:
        total = job.progress.total_epochs or job.spec.training_params.epochs
        lines.append(f"{STATUS_EMOJI[job.status]} `{short_id(job.task_id)}` *{escape(clip(job.spec.display_name, 60))}*"
                     f" \u2014 {STATUS_WORD[job.status].lower()}, epoch {job.progress.epoch}/{total},"
                     f" {format_usd(cost_so_far(job))}, by {user_ref(job.origin.user)}")
    return Message(f"{len(jobs)} recent jobs", [section("*Recent jobs in this channel*"),
                                                section("\n".join(lines))])


HELP = """*`/train`* starts a YOLO training run; everything about it lives in one thread.
\u2022 `/train epochs=10 arch=yolo` \u2014 options: `epochs`, `arch`, `batch`, `lr`, `imgsz`, `dataset`, `gpu`, \
`name`, `tags` (comma list), `priority` (0-9), `max_cost` (USD: stop at the first checkpoint past it). \
Quote values with spaces: `name="my run"`.
\u2022 `/train` with no text opens a form.
\u2022 `/train status [ID]` \u2014 a job of this channel or one of yours (the latest in this channel without an ID; \
8 characters of the ID are enough).
\u2022 `/train list` \u2014 recent jobs in this channel.
\u2022 `/train costs [week|month]` \u2014 what this team spent, by user, channel, architecture and GPU, with budgets.
\u2022 `/train models [NAME]` \u2014 registered model versions with their metrics, and which is in production \
(a completed run's *Promote* button sets it: its submitter or an admin).
\u2022 `/train cancel ID` / `/train retry ID` \u2014 or use the buttons on the job's card; for the job's submitter \
and admins.
\u2022 `/train budget` \u2014 budgets with spend and what is left; admins: `/train budget set channel=C0123 50/month` \
(or `tenant`, `user=U0456`; `/week`), `/train budget remove channel=C0123`. A job over a budget waits for an \
admin's Approve."""


def help_message(gpu_types: tuple[str, ...] = ()) -> Message:
    """``/train help``; with ``gpu_types``, the GPU types this deployment runs."""
    gpus = f"\n\u2022 `gpu=` here: {', '.join(f'`{escape(g)}`' for g in gpu_types)}." if gpu_types else ""
    return notice(HELP + gpus)

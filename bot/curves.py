"""The training curves' reply in a job's thread: its file name, title and caption (pure).

The picture itself is drawn by ``orchestrator.curves`` and uploaded by the notifier
(bot/notifier/uploads.py) once the job has ended, after its final reply, as the plan's
``curves`` step (bot/plan.py). The file name carries the job id: it is how a notifier that
does not know whether its upload went through finds it in the thread (bot/notifier/poster.py).
The thread's record keeps the file's id (or, when it was found that way, the ts of the message
that shares it).
"""

from __future__ import annotations

from orchestrator.domain.epochs import attempt_starts
from orchestrator.domain.job import Job

from bot import blocks

KEY = "curves"  # its step in the plan and its entry in the thread's record
PREFIX = "laxai-curves-"


def filename(task_id: str) -> str:
    return f"{PREFIX}{task_id}.png"


def title(job: Job) -> str:
    return blocks.clip(f"Training curves: {job.spec.display_name}", 200)


def alt_text(job: Job) -> str:
    """What a screen reader says of the picture (Slack allows 1000 characters)."""
    last = job.epochs[-1] if job.epochs else None
    figures = ""
    if last is not None and last.map50_95 is not None:
        figures = f"; at epoch {last.epoch} mAP50-95 {last.map50_95:.3f}"
        figures += f", mAP50 {last.map50:.3f}" if last.map50 is not None else ""
    return blocks.clip(f"Train and validation losses and mAP per epoch over {len(job.epochs)} epochs{figures}", 1000)


def caption(job: Job) -> blocks.Message:
    """The words above the picture: how many epochs, and where a new execution took over."""
    epochs = len(job.epochs)
    text = (f":chart_with_downwards_trend: Training curves of *{blocks.escape(job.spec.display_name)}*: "
            f"{epochs} epoch{'s' if epochs != 1 else ''}")
    first = {}
    for row in job.epochs:
        first.setdefault(row.attempt, row.epoch)
    marks = [f"{label} at epoch {first[attempt]}" for attempt, label in sorted(attempt_starts(job).items())]
    if marks:
        text += " \u00b7 " + ", ".join(marks)
    return blocks.Message(blocks.clip(text, blocks.FALLBACK_TEXT), [blocks.section(text)])

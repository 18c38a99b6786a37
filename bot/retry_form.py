"""Retry with changes: the /train form, prefilled with a finished job's spec, that retries it.

Pure parts (the listener is ``bot.listeners.retry_changes``):

- ``prefill``: the job's values as the form shows them (``initial_value`` /
  ``initial_option`` of each field);
- ``view``: the modal, its own ``callback_id``, with the job it retries in
  ``private_metadata`` (and the channel and thread, as the /train form carries them);
- ``retried_job``: that job's id back from a submission, or None when the metadata is
  not one we wrote (too long, not JSON, not a job id);
- ``changed_spec``: the new spec. A field left as it was prefilled keeps the
  original's value exactly (a job that ran on the deployment's default GPU still
  does, its lr is not re-read from text); a field changed takes the new value; a
  field emptied takes the default, as in the /train form. What the form does not
  show (starting weights) is kept.

The metadata only says which job the user meant: the submission is authorised again
from the job itself (its submitter or an admin), so a forged one changes nothing.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from orchestrator.domain.job import Job
from orchestrator.domain.spec import JobSpec

from bot import modal
from bot.options import BY_KEY, KEYS, build_spec

CALLBACK_ID = "laxai_retry_modal"
TITLE = "Retry with changes"  # Slack: at most 24 characters
TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
THREAD_TS = re.compile(r"\d{1,12}\.\d{1,8}")


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _decimal(value: float) -> str:
    """A number as Slack's number_input takes it: 0.0005, never 5e-04."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def prefill(spec: JobSpec, default_gpu: str) -> dict[str, str]:
    """The form's initial text for each option, from ``spec``."""
    tp, mp = spec.training_params, spec.model_params
    return {
        "epochs": str(tp.epochs),
        "arch": mp.architecture,
        "batch": str(tp.batch_size),
        "lr": _decimal(tp.learning_rate),
        "imgsz": str(mp.input_size),
        "dataset": spec.dataset,
        "gpu": spec.gpu_type or default_gpu,
        "name": spec.custom_name or "",
        "tags": ",".join(spec.wandb_tags),
        "priority": str(spec.priority),
        "max_cost": _decimal(spec.max_cost_usd) if spec.max_cost_usd is not None else "",
    }


def view(job: Job, channel: str, thread_ts: str | None, default_gpu: str,
         gpu_types: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The modal for views.open: the /train form with ``job``'s values, retrying it on submit."""
    form = modal.view(channel, default_gpu, thread_ts, gpu_types, initial=prefill(job.spec, default_gpu))
    metadata = {"channel": channel, "thread_ts": thread_ts, "retry_of": job.task_id}
    return {**form, "callback_id": CALLBACK_ID, "title": _text(TITLE), "submit": _text("Retry"),
            "private_metadata": json.dumps(metadata, separators=(",", ":"))}


def retried_job(metadata: dict[str, Any]) -> str | None:
    """The job id a submission's metadata names, if it is one."""
    task_id = metadata.get("retry_of")
    return task_id if isinstance(task_id, str) and TASK_ID.fullmatch(task_id) else None


def thread_of(metadata: dict[str, Any]) -> str | None:
    """The clicked card's thread from the metadata, if it looks like a Slack ts."""
    ts = metadata.get("thread_ts")
    return ts if isinstance(ts, str) and THREAD_TS.fullmatch(ts) else None


def changed_spec(original: JobSpec, values: dict[str, tuple[str, str]], default_gpu: str) -> JobSpec:
    """The retry's spec from the submitted ``values`` (``modal.values``: blanks left out).
    Raises OptionErrors (by option key) for a bad value."""
    shown = prefill(original, default_gpu)
    base = original.model_dump(mode="json")
    changed: dict[str, tuple[str, str]] = {}
    for key in KEYS:
        submitted = values.get(key, (key, ""))[1].strip()
        if submitted == shown[key].strip():
            continue  # as prefilled: the original's value stays, exactly
        _drop(base, BY_KEY[key].path)  # changed or emptied: the new value, or the default
        if submitted:
            changed[key] = (key, submitted)
    return build_spec(original.tenant_id, changed, base=base)


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    for part in path[:-1]:
        data = data.get(part) or {}
    data.pop(path[-1], None)

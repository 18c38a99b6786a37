"""The /train form: a modal with the same options as the command, and its submission.

Each option is an input block whose block_id is the option key, so a bad value
comes back to Slack as ``{"response_action": "errors", "errors": {key: message}}``
right under the field. The channel the form was opened from travels in
``private_metadata`` (Slack gives a view_submission no channel of its own).
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.domain.errors import FieldError
from orchestrator.domain.spec import ARCHITECTURES, LIMITS

from bot.blocks import clip, escape
from bot.options import BY_KEY, KEYS, OptionErrors, defaults

CALLBACK_ID = "laxai_train_modal"
ACTION_ID = "value"
TITLE = "Train a model"  # Slack: at most 24 characters
MAX_METADATA = 3000


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _number(initial: str, decimal: bool = False, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "number_input", "action_id": ACTION_ID, "is_decimal_allowed": decimal}
    if initial:
        element["initial_value"] = initial
    if low is not None:
        element["min_value"] = str(low)
    if high is not None:
        element["max_value"] = str(high)
    return element


def _select(choices: list[str], initial: str) -> dict[str, Any]:
    options = [{"text": _text(c), "value": c} for c in choices]
    element: dict[str, Any] = {"type": "static_select", "action_id": ACTION_ID, "options": options}
    if initial in choices:
        element["initial_option"] = options[choices.index(initial)]
    return element


def _plain(initial: str, placeholder: str, max_length: int | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": ACTION_ID,
                               "placeholder": _text(clip(placeholder, 150))}
    if initial:
        element["initial_value"] = initial
    if max_length:
        element["max_length"] = max_length
    return element


def _elements(gpu_type: str, gpu_types: tuple[str, ...],
              initial: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    d = {**defaults(gpu_type), **(initial or {})}  # initial: a job's own values (Retry with changes)
    return {
        "epochs": _number(d["epochs"], low=LIMITS["epochs"][0], high=LIMITS["epochs"][1]),
        "arch": _select(list(ARCHITECTURES), d["arch"]),
        "batch": _number(d["batch"], low=LIMITS["batch_size"][0], high=LIMITS["batch_size"][1]),
        "lr": _number(d["lr"], decimal=True),
        "imgsz": _number(d["imgsz"], low=LIMITS["input_size"][0], high=LIMITS["input_size"][1]),
        "dataset": _plain(d["dataset"], "synthetic, synthetic:64, /data/x/data.yaml or gs://bucket/x",
                          LIMITS["dataset"]),
        "gpu": _select(list(gpu_types), d["gpu"]),
        "name": _plain(d["name"], "e.g. my run (default: arch-epochs)", LIMITS["custom_name"]),
        "tags": _plain(d["tags"], "comma-separated, e.g. baseline,fast"),
        "priority": _number(d["priority"], low=LIMITS["priority"][0], high=LIMITS["priority"][1]),
        "max_cost": _number(d["max_cost"], decimal=True, high=LIMITS["max_cost_usd"]),
    }


def view(channel: str, gpu_type: str, thread_ts: str | None = None,
         gpu_types: tuple[str, ...] | None = None, initial: dict[str, str] | None = None) -> dict[str, Any]:
    """The modal for views.open; its GPU choices are ``gpu_types``, what this deployment runs
    (``orchestrator.backends.gpu_types_available``; unset: only ``gpu_type``). ``initial``: values
    shown instead of the defaults, by option key (``bot.retry_form.prefill``)."""
    gpu_types = gpu_types or (gpu_type,)
    blocks = []
    for key, element in _elements(gpu_type, gpu_types, initial).items():
        option = BY_KEY[key]
        allowed = f"one of {', '.join(gpu_types)}" if key == "gpu" else option.allowed
        blocks.append({
            "type": "input",
            "block_id": key,
            "optional": True,  # blank means the default
            "label": _text(option.label),
            "hint": _text(clip(f"{option.key}= \u2014 {allowed}", 2000)),
            "element": element,
        })
    metadata = json.dumps({"channel": channel, "thread_ts": thread_ts}, separators=(",", ":"))
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _text(TITLE),
        "submit": _text("Train"),
        "close": _text("Cancel"),
        "private_metadata": metadata[:MAX_METADATA],
        "blocks": blocks,
    }


def metadata(view_payload: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view_payload.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def values(view_payload: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{option key: (key, raw text)} from the submitted state; blanks left out."""
    state = (view_payload.get("state") or {}).get("values") or {}
    result: dict[str, tuple[str, str]] = {}
    for key in KEYS:
        element = (state.get(key) or {}).get(ACTION_ID) or {}
        if element.get("type") == "static_select":
            raw = ((element.get("selected_option") or {}).get("value")) or ""
        else:
            raw = element.get("value") or ""
        if str(raw).strip():
            result[key] = (key, str(raw))
    return result


def errors_response(errors: OptionErrors | list[FieldError]) -> dict[str, Any]:
    """Slack's response_action=errors; messages for fields with no block go on the first block."""
    items = errors.errors if isinstance(errors, OptionErrors) else errors
    shown: dict[str, str] = {}
    for error in items:
        block = error.field if error.field in BY_KEY else KEYS[0]
        message = error.message if error.field in BY_KEY else f"{error.field}: {error.message}"
        shown[block] = f"{shown[block]}; {message}" if block in shown else message
    # Shown as plain text under the field; messages can echo what the user typed.
    return {"response_action": "errors", "errors": {k: clip(escape(v), 2000) for k, v in shown.items()}}

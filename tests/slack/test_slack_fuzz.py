"""Property-based: whatever people paste into /train, or whatever a button carries, the app answers
200 with an ephemeral message or a clean refusal: never a 500, never a traceback, always fast."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.slack.slack_env import CHANNEL

ACK_LIMIT = 3.0
KEYS = ["epochs", "arch", "batch", "lr", "imgsz", "dataset", "gpu", "name", "tags", "priority", "epoch", "batch_size"]
VALUES = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(str),
                   st.text(max_size=40), st.sampled_from(["yolo", "synthetic:8", "nvidia-l4", "“quoted”", '"a b"']))
PAIRS = st.lists(st.tuples(st.sampled_from(KEYS), VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), max_size=8).map(" ".join)
TEXTS = st.one_of(st.text(max_size=300), PAIRS, st.sampled_from(["help", "status", "list", "cancel", "retry x"]))
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(text=TEXTS)
def test_any_train_text_gets_a_clean_fast_answer(inproc, text):
    before = len(inproc.store.list(limit=10_000))
    sent = inproc.sender.command(text)
    assert sent.status == 200, (text, sent.status, sent.response.text[:300])
    assert sent.seconds < ACK_LIMIT
    assert "Traceback" not in sent.response.text
    body = (sent.json() if sent.response.content else None) or {}  # an empty text opens the form: empty ack
    if body.get("response_type") == "ephemeral" and "Queued" not in sent.text:
        assert len(inproc.store.list(limit=10_000)) == before  # a refusal never half-submits


@FUZZ
@given(value=st.one_of(st.text(max_size=200), st.dictionaries(st.text(max_size=5), st.text(max_size=20)).map(json.dumps)),
       action=st.sampled_from(["laxai_cancel", "laxai_retry", "laxai_wandb", "unknown_action"]))
def test_any_button_payload_is_answered_without_a_server_error(inproc, value, action):
    message = {"ts": "1700000000.000100", "blocks": [{"type": "actions", "block_id": "laxai_job_actions",
                                                       "elements": [{"type": "button", "action_id": action,
                                                                     "text": {"type": "plain_text", "text": "x"},
                                                                     "value": value}]}],
               "channel": CHANNEL}
    sent = inproc.sender.click(message, action)
    assert sent.status < 500, (action, value, sent.response.text[:300])
    assert "Traceback" not in sent.response.text

"""The form's GPU select, its hint and ``/train help`` offer only the GPU types this deployment
runs (``orchestrator.backends.gpu_types_available``), not every priced type (issue 10 follow-up).

Real signed requests against the service in this process; the form is the one the fake Slack
received through views.open.
"""

from __future__ import annotations

import json

from orchestrator.backends import gpu_types_available


def open_form(service, trigger: str) -> dict:
    sent = service.sender.command("", trigger=trigger)
    assert sent.status == 200 and not sent.response.content
    return service.fake.views[-1]


def gpu_block(view: dict) -> dict:
    (block,) = [b for b in view["blocks"] if b["block_id"] == "gpu"]
    return block


def test_the_form_and_help_offer_only_the_gpu_types_this_deployment_runs(make_inproc):
    service = make_inproc(GPU_TYPES_AVAILABLE="cpu")
    view = open_form(service, "trig-gpu-only-cpu")
    gpu = gpu_block(view)
    assert [o["value"] for o in gpu["element"]["options"]] == ["cpu"]
    assert "nvidia-l4" not in json.dumps(gpu) and gpu["hint"]["text"].endswith("one of cpu")
    help_text = service.sender.command("help").json()["blocks"][0]["text"]["text"]
    assert "`gpu=` here: `cpu`." in help_text and "nvidia-l4" not in help_text

    done = service.sender.submit_view(view, {"gpu": "cpu", "epochs": "1"})
    assert done.status == 200 and not done.response.content  # what the form offers is accepted
    (job,) = service.store.list(limit=10)
    assert job.spec.gpu_type == "cpu"


def test_by_default_the_form_offers_what_the_launcher_runs(make_inproc):
    service = make_inproc()
    gpu = gpu_block(open_form(service, "trig-gpu-default"))
    expected = gpu_types_available(service.runtime.settings)
    assert tuple(o["value"] for o in gpu["element"]["options"]) == expected == ("nvidia-l4", "cpu")
    assert gpu["element"]["initial_option"]["value"] == service.runtime.settings.GPU_TYPE


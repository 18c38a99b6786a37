"""Retry with changes, the pure parts (bot/retry_form.py): the prefill, the modal, the spec it
makes, the metadata it trusts, and the lineage line of the card (bot/blocks.py)."""

from __future__ import annotations

import json

import pytest

from orchestrator.domain.lineage import lineage_after
from orchestrator.domain.spec import JobSpec
from tests.fakes.fake_slack import validate_blocks, validate_view

from bot import blocks, modal, retry_form
from bot.options import OptionErrors
from tests.slack import jobflow

GPU = "nvidia-l4"
GPUS = ("nvidia-l4", "cpu")


def a_spec(**fields) -> JobSpec:
    return JobSpec(tenant_id=jobflow.TEAM, **fields)


def submitted(form: dict, changes: dict[str, str]) -> dict[str, tuple[str, str]]:
    """``modal.values`` of ``form`` submitted with its initial values, edited by ``changes``."""
    values = {}
    for block in form["blocks"]:
        element = block["element"]
        initial = element.get("initial_value") or (element.get("initial_option") or {}).get("value") or ""
        raw = changes.get(block["block_id"], initial)
        if raw.strip():
            values[block["block_id"]] = (block["block_id"], raw)
    return values


def initial_values(form: dict) -> dict[str, str]:
    return {b["block_id"]: b["element"].get("initial_value") or (b["element"].get("initial_option") or {})
            .get("value") for b in form["blocks"]}


def test_the_form_is_prefilled_with_every_value_of_the_job():
    spec = a_spec(training_params={"epochs": 3, "learning_rate": 0.00001, "batch_size": 8},
                  model_params={"architecture": "yolov8s", "input_size": 320}, dataset="synthetic:16",
                  custom_name="night run", wandb_tags=["a", "b"], priority=4, max_cost_usd=2.5)
    job = jobflow.make_job(origin=jobflow.slack_origin()).model_copy(update={"spec": spec})
    form = retry_form.view(job, "C0TRAIN", "1.000100", GPU, GPUS)
    assert validate_view(form) == []
    assert initial_values(form) == {
        "epochs": "3", "arch": "yolov8s", "batch": "8", "lr": "0.00001", "imgsz": "320", "dataset": "synthetic:16",
        "gpu": GPU, "name": "night run", "tags": "a,b", "priority": "4", "max_cost": "2.5"}
    assert form["callback_id"] == retry_form.CALLBACK_ID != modal.CALLBACK_ID
    assert json.loads(form["private_metadata"]) == {"channel": "C0TRAIN", "thread_ts": "1.000100",
                                                    "retry_of": job.task_id}


def test_a_form_submitted_as_prefilled_is_the_same_spec_even_on_the_default_gpu():
    original = a_spec(training_params={"learning_rate": 0.0003}, model_params={"weights": "registry:m:v2"})
    form = retry_form.view(jobflow.make_job().model_copy(update={"spec": original}), "C", None, GPU, GPUS)
    assert retry_form.changed_spec(original, submitted(form, {}), GPU) == original  # gpu_type stays None


def test_changed_fields_take_the_new_value_emptied_ones_the_default_and_weights_stay():
    original = a_spec(training_params={"epochs": 3}, custom_name="first", max_cost_usd=4.0,
                      model_params={"weights": "registry:m:v2"})
    form = retry_form.view(jobflow.make_job().model_copy(update={"spec": original}), "C", None, GPU, GPUS)
    new = retry_form.changed_spec(original, submitted(form, {"epochs": "10", "lr": "0.0005", "name": "",
                                                             "max_cost": "", "gpu": "cpu"}), GPU)
    assert new.training_params.epochs == 10 and new.training_params.learning_rate == 0.0005
    assert new.custom_name is None and new.max_cost_usd is None and new.gpu_type == "cpu"
    assert new.model_params.weights == "registry:m:v2"


def test_a_bad_value_is_refused_by_its_field():
    original = a_spec()
    form = retry_form.view(jobflow.make_job().model_copy(update={"spec": original}), "C", None, GPU, GPUS)
    with pytest.raises(OptionErrors) as refused:
        retry_form.changed_spec(original, submitted(form, {"epochs": "0"}), GPU)
    assert modal.errors_response(refused.value)["errors"].keys() == {"epochs"}


@pytest.mark.parametrize("meta", [{}, {"retry_of": "x" * 36}, {"retry_of": ["a"]}, {"retry_of": "../etc"},
                                  {"retry_of": "0599de49-5940-40e1-b919-1b365d2da257" + "0"}])
def test_metadata_that_names_no_job_id_is_not_trusted(meta):
    assert retry_form.retried_job(meta) is None


def test_the_card_of_a_retry_shows_the_chain_and_what_each_version_changed():
    v1 = jobflow.make_job(epochs=3)
    v2 = jobflow.make_job(epochs=10)
    v2 = v2.model_copy(update={"lineage": lineage_after(v1.task_id, None, v1.spec, v2.spec), "retry_of": v1.task_id})
    v3 = jobflow.make_job(epochs=10, custom_name="<!here> @channel")
    v3 = v3.model_copy(update={"lineage": lineage_after(v2.task_id, v2.lineage, v2.spec, v3.spec)})
    line = blocks.lineage_line(v3)
    assert line == (f":dna: v1 `{v1.task_id[:8]}` \u2192 v2 `{v2.task_id[:8]}` (epochs 3\u219210) \u2192 "
                    f"*v3 (this run)* (name none\u2192&lt;!here&gt; @\u2060channel)")
    card = blocks.card(v3)
    assert validate_blocks(card.blocks) == [] and line in json.dumps(card.blocks, ensure_ascii=False)
    assert blocks.lineage_line(v1) is None


def test_a_finished_card_offers_retry_with_changes_beside_retry():
    job = jobflow.fail(jobflow.start(jobflow.make_job()))
    ids = [e["action_id"] for b in blocks.card(job).blocks if b["type"] == "actions" for e in b["elements"]]
    assert ids[:2] == [blocks.RETRY_ACTION, blocks.RETRY_CHANGES_ACTION]
    running = jobflow.start(jobflow.make_job())
    assert blocks.RETRY_CHANGES_ACTION not in json.dumps(blocks.card(running).blocks)

"""JobSpec validation: the seed's body, ranges, aliases, unknown fields, messages that name fields."""

from __future__ import annotations

import pytest

from orchestrator.domain.errors import SpecError, parse_spec
from orchestrator.domain.spec import ARCHITECTURES, DEFAULT_ARCHITECTURE, JobSpec


def errors_of(data):
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return {e.field: e.message for e in caught.value.errors}


def test_the_seed_body_parses_with_defaults():
    spec = parse_spec({
        "tenant_id": "my-tenant",
        "training_params": {"epochs": 10, "batch_size": 16, "learning_rate": 0.001, "model_type": "detection"},
        "model_params": {"architecture": "yolo", "input_size": 640},
        "custom_name": "my-training-job",
        "wandb_tags": ["tag1", "tag2"],
    })
    assert spec.model_params.architecture == DEFAULT_ARCHITECTURE == "yolo11n"
    assert spec.dataset == "synthetic" and spec.gpu_type is None and spec.priority == 0
    assert spec.display_name == "my-training-job"


@pytest.mark.parametrize(("alias", "name"), [("yolo", "yolo11n"), ("YOLOv8", "yolov8n"), ("yolo11s", "yolo11s")])
def test_architecture_aliases(alias, name):
    assert parse_spec({"tenant_id": "t", "model_params": {"architecture": alias}}).model_params.architecture == name


@pytest.mark.parametrize(("value", "ok"), [(1, True), (1000, True), (0, False), (1001, False), (True, False), ("5", False)])
def test_epochs_range(value, ok):
    data = {"tenant_id": "t", "training_params": {"epochs": value}}
    if ok:
        assert parse_spec(data).training_params.epochs == value
    else:
        assert "training_params.epochs" in errors_of(data)


@pytest.mark.parametrize("size", [32, 64, 640, 2048])
def test_input_size_multiples_of_32_pass(size):
    assert parse_spec({"tenant_id": "t", "model_params": {"input_size": size}}).model_params.input_size == size


@pytest.mark.parametrize("size", [0, 16, 33, 100, 2080])
def test_other_input_sizes_fail(size):
    assert "model_params.input_size" in errors_of({"tenant_id": "t", "model_params": {"input_size": size}})


@pytest.mark.parametrize("lr", [0, -0.1, 1.5, float("nan"), float("inf")])
def test_learning_rate_must_be_in_0_1(lr):
    assert "training_params.learning_rate" in errors_of({"tenant_id": "t", "training_params": {"learning_rate": lr}})


def test_unknown_fields_are_named_with_a_suggestion():
    found = errors_of({"tenant_id": "t", "training_params": {"epoch": 3}, "datset": "synthetic"})
    assert "did you mean 'epochs'" in found["training_params.epoch"]
    assert "did you mean 'dataset'" in found["datset"]


def test_every_error_is_reported_at_once():
    found = errors_of({"tenant_id": "", "training_params": {"epochs": 0, "batch_size": 0},
                       "model_params": {"architecture": "resnet"}, "gpu_type": "tpu"})
    assert set(found) == {"tenant_id", "training_params.epochs", "training_params.batch_size",
                          "model_params.architecture", "gpu_type"}
    assert "yolo11n" in found["model_params.architecture"]
    assert "nvidia-l4" in found["gpu_type"]


@pytest.mark.parametrize("gpu", ["nvidia-t4", "nvidia-a100-80gb", "nvidia-h100-80gb"])
def test_gpu_types_no_launcher_runs_are_refused_naming_those_known(gpu):
    found = errors_of({"tenant_id": "t", "gpu_type": gpu})
    assert set(found) == {"gpu_type"}
    assert gpu in found["gpu_type"] and "nvidia-l4, cpu" in found["gpu_type"]


def test_known_gpu_types_are_accepted_in_any_case():
    assert JobSpec(tenant_id="t", gpu_type=" NVIDIA-L4 ").gpu_type == "nvidia-l4"
    assert JobSpec(tenant_id="t", gpu_type="cpu").gpu_type == "cpu"


def test_limits_on_names_tags_and_datasets():
    assert "custom_name" in errors_of({"tenant_id": "t", "custom_name": "x" * 101})
    assert "custom_name" in errors_of({"tenant_id": "t", "custom_name": "bad\x00name"})
    assert "wandb_tags" in errors_of({"tenant_id": "t", "wandb_tags": ["a"] * 21})
    assert "wandb_tags.0" in errors_of({"tenant_id": "t", "wandb_tags": ["a,b"]})
    assert "dataset" in errors_of({"tenant_id": "t", "dataset": "synthetic:3"})


def test_synthetic_sizes():
    assert parse_spec({"tenant_id": "t"}).synthetic_images() == 32
    assert parse_spec({"tenant_id": "t", "dataset": "synthetic:16"}).synthetic_images() == 16
    assert parse_spec({"tenant_id": "t", "dataset": "/data/x.yaml"}).synthetic_images() is None


def test_known_architectures_are_buildable_yaml_names():
    assert all(name.startswith(("yolov8", "yolo11")) for name in ARCHITECTURES)
    assert JobSpec(tenant_id="t").model_params.architecture in ARCHITECTURES


def test_synthetic_datasets_stay_within_the_pixel_budget():
    found = errors_of({"tenant_id": "t", "dataset": "synthetic:10000", "model_params": {"input_size": 2048}})
    assert set(found) == {"dataset"}
    assert "2,500,000,000" in found["dataset"] and "at most 596" in found["dataset"]
    assert "at most 6103" in errors_of({"tenant_id": "t", "dataset": "synthetic:6104"})["dataset"]  # default 640
    assert parse_spec({"tenant_id": "t", "dataset": "synthetic:6103"}).synthetic_images() == 6103
    assert parse_spec({"tenant_id": "t", "dataset": "synthetic:596",
                       "model_params": {"input_size": 2048}}).synthetic_images() == 596
    assert parse_spec({"tenant_id": "t", "dataset": "synthetic:10000",
                       "model_params": {"input_size": 480}}).synthetic_images() == 10000

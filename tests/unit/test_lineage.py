"""A retry's lineage (orchestrator/domain/lineage.py): the spec diff, the chain's numbers, what resumes."""

from __future__ import annotations

from orchestrator.domain.lineage import (
    MAX_EARLIER,
    MAX_VALUE,
    describe,
    keeps_checkpoint,
    lineage_after,
    spec_changes,
)
from orchestrator.domain.spec import JobSpec


def spec(**fields) -> JobSpec:
    return JobSpec(tenant_id="T1", **fields)


def test_the_diff_names_each_changed_field_with_before_and_after():
    before = spec(training_params={"epochs": 3, "learning_rate": 0.001})
    after = spec(training_params={"epochs": 10, "learning_rate": 0.0005})
    assert describe(spec_changes(before, after)) == "epochs 3\u219210, lr 0.001\u21920.0005"


def test_the_same_spec_has_no_changes():
    assert spec_changes(spec(), spec()) == []
    assert describe([]) == "same spec"


def test_every_field_people_set_is_compared_and_absent_values_read_as_none_or_default():
    before = spec()
    after = spec(training_params={"batch_size": 8}, model_params={"architecture": "yolov8s", "input_size": 320,
                                                                   "weights": "registry:m:v1"},
                 dataset="synthetic:64", gpu_type="cpu", max_cost_usd=2.5, priority=3, custom_name="run b",
                 wandb_tags=["x", "y"])
    shown = {c.field: (c.before, c.after) for c in spec_changes(before, after)}
    assert shown == {
        "batch": ("16", "8"), "imgsz": ("640", "320"), "arch": ("yolo11n", "yolov8s"),
        "weights": ("none", "registry:m:v1"), "dataset": ("synthetic", "synthetic:64"), "gpu": ("default", "cpu"),
        "max_cost": ("none", "2.5"), "priority": ("0", "3"), "name": ("none", "run b"), "tags": ("none", "x,y"),
    }


def test_long_values_are_clipped():
    (change,) = spec_changes(spec(), spec(dataset="/data/" + "d" * 500 + "/data.yaml"))
    assert len(change.after) == MAX_VALUE and change.after.endswith("\u2026")


def test_a_chain_numbers_its_versions_and_keeps_what_each_changed():
    v1 = spec(training_params={"epochs": 3})
    v2 = spec(training_params={"epochs": 10})
    v3 = spec(training_params={"epochs": 10, "batch_size": 8})
    second = lineage_after("job-1", None, v1, v2)
    assert second.number == 2 and [(v.task_id, v.number, v.changes) for v in second.earlier] == [("job-1", 1, [])]
    third = lineage_after("job-2", second, v2, v3)
    assert third.number == 3 and describe(third.changes) == "batch 16\u21928"
    assert [(v.task_id, v.number) for v in third.earlier] == [("job-1", 1), ("job-2", 2)]
    assert describe(third.earlier[1].changes) == "epochs 3\u219210"


def test_a_long_chain_keeps_only_the_latest_versions_with_their_numbers():
    lineage = None
    for n in range(1, 15):
        lineage = lineage_after(f"job-{n}", lineage, spec(), spec())
    assert lineage.number == 15
    assert len(lineage.earlier) == MAX_EARLIER
    assert [v.number for v in lineage.earlier] == list(range(15 - MAX_EARLIER, 15))


def test_only_changes_outside_training_keep_the_checkpoint():
    same = spec_changes(spec(), spec(custom_name="again", max_cost_usd=9.0, priority=2, wandb_tags=["b"]))
    assert keeps_checkpoint(same) and keeps_checkpoint([])
    assert not keeps_checkpoint(spec_changes(spec(), spec(training_params={"epochs": 20})))
    assert not keeps_checkpoint(spec_changes(spec(), spec(dataset="synthetic:64")))

"""The estimate before launch (orchestrator/domain/estimate.py): pure domain tests.

Prior vs history, trimming of outliers, continuations under a task cap, the low/high band, the
dataset-size cases, the figures of one completed job (with and without the cost split), and the
words the front ends show.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.domain import estimate as rule
from orchestrator.domain.cost import rates_for
from orchestrator.domain.estimate import Cap, describe, estimate, images_of, sample_of, trim
from orchestrator.domain.job import Attempt, CostSummary, Job
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.domain.transitions import claim, record_dataset_images

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
CPU = rates_for("cpu", 0, "4000m", "16Gi")
L4 = rates_for("nvidia-l4", 1, "4000m", "16Gi")
NO_CAP = Cap()


def spec(dataset: str = "synthetic:64", arch: str = "yolo11n", size: int = 96, epochs: int = 2) -> JobSpec:
    return JobSpec.model_validate({"tenant_id": "t", "dataset": dataset, "training_params": {"epochs": epochs},
                                   "model_params": {"architecture": arch, "input_size": size}})


def new_job(**kw) -> Job:
    return Job(tenant_id="t", spec=spec(**kw))


def done(training: float, overhead: float = 5.0, images: int | None = 64, epochs: int = 2, arch: str = "yolo11n",
         size: int = 96, hardware: str = "cpu", executions: int = 1, dataset: str = "synthetic:64",
         split: bool = True, age: float = 0.0) -> Job:
    """A completed job that trained ``training`` s and spent ``overhead`` s outside the loop."""
    start = T0 - timedelta(seconds=age)
    attempts = [Attempt(number=n + 1, claimed_at=start, started_at=start, ended_at=start + timedelta(seconds=1))
                for n in range(executions)]
    billed = training + overhead
    cost = CostSummary(billed_seconds=billed, gpu_type=hardware, usd=CPU.cost(billed),
                       training_s=training if split else 0.0, overhead_s=overhead if split else 0.0)
    return Job(tenant_id="t", spec=spec(dataset=dataset, arch=arch, size=size, epochs=epochs),
               status=JobStatus.COMPLETED, attempts=attempts, cost=cost, dataset_images=images, created_at=start)


# -- prior ------------------------------------------------------------------------------------------------


def test_without_history_the_prior_is_used_with_a_threefold_band():
    found = estimate(new_job(), 64, [], [], NO_CAP, CPU)
    prior = rule.PRIORS["cpu"]
    training = prior.per_image_epoch("yolo11n", 96) * 64 * 2
    assert found.basis == "prior" and found.samples == 0 and found.images == 64
    assert found.seconds == pytest.approx(training + prior.per_execution, abs=0.1)
    assert found.usd == CPU.cost(found.seconds)
    assert found.low_usd == pytest.approx(found.usd / 3, rel=0.02) and found.high_usd == pytest.approx(found.usd * 3, rel=0.02)
    assert found.gpu_type == "cpu"


def test_the_prior_grows_with_pixels_and_with_the_models_flops():
    small = estimate(new_job(size=320, epochs=50), 1000, [], [], NO_CAP, L4)
    large = estimate(new_job(size=640, epochs=50), 1000, [], [], NO_CAP, L4)
    bigger_model = estimate(new_job(arch="yolo11x", size=640, epochs=50), 1000, [], [], NO_CAP, L4)
    prior = rule.PRIORS["nvidia-l4"]
    per_size = lambda found: (found.seconds - prior.per_execution) / (1000 * 50) - prior.base  # noqa: E731
    assert per_size(large) == pytest.approx(4 * per_size(small), rel=0.01)  # twice the side, 4x the pixels
    gflops = rule.GFLOPS["yolo11x"] / rule.GFLOPS["yolo11n"]
    assert per_size(bigger_model) == pytest.approx(prior.fixed + prior.compute * gflops, rel=0.01)
    assert large.gpu_type == "nvidia-l4" and large.usd == L4.cost(large.seconds)


def test_unknown_dataset_size_with_no_history_is_a_guess_with_the_widest_band():
    job = new_job(dataset="data/coco.yaml")
    found = estimate(job, None, [], [], NO_CAP, CPU)
    assert found.basis == "guess" and found.images == rule.ASSUMED_IMAGES
    assert found.high_usd == pytest.approx(found.usd * 10, rel=1e-3)
    assert "dataset's size unknown" in describe(found)


# -- history ----------------------------------------------------------------------------------------------


def test_history_scales_seconds_per_image_epoch_to_this_jobs_size():
    # Each earlier run: 64 images x 2 epochs in 12.8 s -> 0.1 s per image-epoch, 5 s overhead.
    history = [done(12.8, 5.0) for _ in range(3)]
    found = estimate(new_job(dataset="synthetic:128", epochs=3), 128, history, [], NO_CAP, CPU)
    assert found.basis == "history" and found.samples == 3
    assert found.seconds == pytest.approx(0.1 * 128 * 3 + 5.0, abs=0.1)
    assert found.usd == CPU.cost(found.seconds)


def test_history_only_counts_the_same_architecture_size_and_hardware():
    others = [done(100.0, arch="yolov8n"), done(100.0, size=128), done(100.0, hardware="nvidia-l4")]
    found = estimate(new_job(), 64, others, [], NO_CAP, CPU)
    assert found.basis == "prior"
    alike = estimate(new_job(), 64, [*others, done(12.8)], [], NO_CAP, CPU)
    assert alike.basis == "history" and alike.samples == 1


def test_outliers_are_trimmed_before_the_median():
    assert trim([1.0, 1.1, 0.9, 5.0]) == [1.0, 1.1, 0.9]  # 5 > 2 x median
    assert trim([1.0, 1.1, 0.3]) == [1.0, 1.1]  # 0.3 < median / 2
    assert trim([1.0, 9.0]) == [1.0, 9.0]  # too few to tell
    history = [done(12.8), done(12.8), done(12.8), done(128.0)]  # one run on a machine under load
    found = estimate(new_job(), 64, history, [], NO_CAP, CPU)
    assert found.samples == 3 and found.seconds == pytest.approx(12.8 + 5.0, abs=0.1)


def test_the_band_is_the_spread_of_the_samples_and_never_narrower_than_their_number_allows():
    spread = [done(10.0), done(12.0), done(14.0)]
    found = estimate(new_job(), 64, spread, [], NO_CAP, CPU)
    assert found.low_usd <= CPU.cost(15.0) and found.high_usd >= CPU.cost(19.0)  # 10-14 s training, 5 s start
    one = estimate(new_job(), 64, [done(12.0)], [], NO_CAP, CPU)  # one sample: at least +-40 %
    assert one.low_usd == pytest.approx(CPU.cost(17.0 * 0.6), rel=0.01)
    assert one.high_usd == pytest.approx(CPU.cost(17.0 * 1.4), rel=0.01)
    many = estimate(new_job(), 64, [done(12.0, age=n) for n in range(20)], [], NO_CAP, CPU)
    assert many.samples == 20 and many.high_usd < one.high_usd


def test_only_the_most_recent_samples_are_used():
    history = [done(12.8, age=n) for n in range(rule.MAX_SAMPLES)] + [done(25.6, age=100 + n) for n in range(10)]
    found = estimate(new_job(), 64, history, [], NO_CAP, CPU)
    assert found.samples == rule.MAX_SAMPLES and found.seconds == pytest.approx(17.8, abs=0.1)


def test_overhead_is_per_execution():
    # Two executions, 10 s of overhead in all: 5 s each; this job plans one.
    found = estimate(new_job(), 64, [done(12.8, overhead=10.0, executions=2)], [], NO_CAP, CPU)
    assert found.seconds == pytest.approx(12.8 + 5.0, abs=0.1)


def test_a_job_stored_before_the_cost_split_counts_its_billed_time_as_training():
    old = done(12.8, overhead=5.0, split=False)
    sample = sample_of(old)
    assert sample.training == pytest.approx(17.8) and sample.overhead == 0.0
    assert estimate(new_job(), 64, [old], [], NO_CAP, CPU).seconds == pytest.approx(17.8, abs=0.1)


def test_only_completed_jobs_are_samples():
    failed = done(12.8).model_copy(update={"status": JobStatus.FAILED})
    assert sample_of(failed) is None
    assert estimate(new_job(), 64, [failed], [], NO_CAP, CPU).basis == "prior"


# -- continuations ----------------------------------------------------------------------------------------


def test_a_task_cap_plans_continuations_with_their_overhead_and_the_half_epoch_each_redoes():
    # 0.1 s per image-epoch x 1000 images x 10 epochs = 1000 s of training, 100 s per epoch, 20 s overhead.
    history = [done(12.8, overhead=20.0)]
    job = new_job(dataset="synthetic:1000", epochs=10)
    uncapped = estimate(job, 1000, history, [], NO_CAP, CPU)
    assert uncapped.seconds == pytest.approx(1000 + 20, abs=0.5)
    cap = Cap(timeout=400, margin=80)  # 400 - 80 - 20 = 300 s of training per execution: 4 executions
    assert cap.continuations(1000, 20) == 3
    capped = estimate(job, 1000, history, [], cap, CPU)
    assert capped.seconds == pytest.approx(1000 + 20 * 4 + 3 * 50, abs=0.5)
    assert Cap().continuations(10_000, 20) == 0  # TASK_TIMEOUT=0: no cap
    assert Cap(timeout=100, margin=120).continuations(1000, 20) >= 1  # a cap with no room still plans


# -- dataset size -----------------------------------------------------------------------------------------


def test_images_come_from_the_spec_or_the_last_count_recorded_on_the_dataset():
    assert images_of(new_job(dataset="synthetic:200"), []) == 200
    assert images_of(new_job(dataset="synthetic"), []) == 32
    real = new_job(dataset="data/a.yaml")
    assert images_of(real, []) is None
    assert images_of(real, [done(1.0, images=None, dataset="data/a.yaml"),
                            done(1.0, images=900, dataset="data/a.yaml")]) == 900


def test_unknown_size_uses_the_per_epoch_time_of_earlier_runs_on_the_dataset():
    earlier = [done(40.0, overhead=5.0, images=None, epochs=4, dataset="data/a.yaml")]  # 10 s per epoch
    found = estimate(new_job(dataset="data/a.yaml", epochs=3), None, [], earlier, NO_CAP, CPU)
    assert found.basis == "history_dataset" and found.samples == 1 and found.images is None
    assert found.seconds == pytest.approx(30.0 + 5.0, abs=0.1)
    assert "1 earlier run on this dataset" in describe(found)


def test_the_worker_records_a_dataset_count_once_and_only_for_its_live_attempt():
    job = claim(new_job(dataset="data/a.yaml"), T0, 60)
    counted = record_dataset_images(job, 1, 900)
    assert counted is not None and counted.dataset_images == 900
    assert record_dataset_images(counted, 1, 900) is None  # already recorded: no second write
    assert record_dataset_images(job, 2, 900) is None  # not the live attempt
    assert record_dataset_images(job, 1, 0) is None


# -- words ------------------------------------------------------------------------------------------------


def test_describe_says_time_cost_hardware_and_basis():
    history = [done(2400.0, overhead=120.0, hardware="nvidia-l4", age=n) for n in range(5)]
    found = estimate(new_job(), 64, history, [], NO_CAP, L4)
    assert describe(found) == f"\u2248 42 min \u00b7 \u2248 ${found.usd:.2f} on nvidia-l4 \u00b7 from 5 similar runs"
    prior = estimate(new_job(), 64, [], [], NO_CAP, CPU)
    assert describe(prior).endswith("on cpu \u00b7 rough guess, no similar runs yet")
    assert rule.about(40) == "40 s" and rule.about(7500) == "2 h 05 min"

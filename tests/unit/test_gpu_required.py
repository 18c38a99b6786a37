"""No silent CPU: REQUIRE_GPU, the worker's device choice and the words it fails with.

On this CPU-only machine torch really sees no CUDA device and no NVIDIA driver is
installed, so ``pick_device`` is exercised for real; a driver is modelled with a fake
``/proc/driver/nvidia/version`` file and a fake ``nvidia-smi`` on PATH.
"""

from __future__ import annotations

import os
import stat

import pytest
import torch

from bot import blocks
from orchestrator.config import load_settings
from orchestrator.domain.job import EndReason, Job, JobError
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from worker import gpu
from worker.gpu import GpuUnavailable, gpu_unavailable_message
from worker.training import pick_device

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA device")


@pytest.fixture
def no_driver(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu, "DRIVER_VERSION_FILE", tmp_path / "no-such-file")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


@pytest.fixture
def driver_535(monkeypatch, tmp_path):
    """What Cloud Run's L4 machines report (driver 535, CUDA 12.2)."""
    version = tmp_path / "version"
    version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.216.03  Wed Oct 30 2024\n")
    monkeypatch.setattr(gpu, "DRIVER_VERSION_FILE", version)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '| NVIDIA-SMI 535.216.03   Driver Version: 535.216.03   CUDA Version: 12.2 |'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_require_gpu_is_on_in_cloud_run_jobs_and_off_elsewhere(monkeypatch):
    monkeypatch.delenv("CLOUD_RUN_JOB", raising=False)
    monkeypatch.delenv("REQUIRE_GPU", raising=False)
    assert load_settings().require_gpu is False
    monkeypatch.setenv("CLOUD_RUN_JOB", "laxai-training-worker")  # Cloud Run sets it in every execution
    assert load_settings().require_gpu is True
    monkeypatch.setenv("REQUIRE_GPU", "0")  # an explicit setting wins
    assert load_settings().require_gpu is False
    monkeypatch.delenv("CLOUD_RUN_JOB")
    monkeypatch.setenv("REQUIRE_GPU", "1")
    assert load_settings().require_gpu is True


def test_without_the_requirement_the_cpu_is_used_as_before(no_driver):
    assert pick_device(load_settings(YOLO_DEVICE=None)).arg == "cpu"


def test_without_a_driver_the_message_says_so_and_names_torchs_cuda(no_driver):
    with pytest.raises(GpuUnavailable) as refused:
        pick_device(load_settings(YOLO_DEVICE=None), require_gpu=True)
    message = str(refused.value)
    assert "no CUDA device is visible" in message and "no NVIDIA driver found" in message
    built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    assert f"torch {torch.__version__}" in message and built in message


def test_a_driver_too_old_for_torchs_cuda_is_named_with_the_fix(driver_535):
    with pytest.raises(GpuUnavailable) as refused:
        pick_device(load_settings(YOLO_DEVICE=None), require_gpu=True)
    message = str(refused.value)
    assert "NVIDIA driver 535.216.03 (supports CUDA up to 12.2)" in message
    assert f"torch {torch.__version__}" in message
    if torch.version.cuda and int(torch.version.cuda.split(".")[0]) > 12:
        assert f"this driver cannot run CUDA {torch.version.cuda}: install a torch build for CUDA 12.x" in message


def test_the_message_for_the_issues_case():
    text = gpu_unavailable_message("2.14.1", "13.0", "535.216.03", "12.2")
    assert text == ("REQUIRE_GPU is set but no CUDA device is visible: NVIDIA driver 535.216.03 (supports CUDA up to "
                    "12.2); torch 2.14.1 built for CUDA 13.0; this driver cannot run CUDA 13.0: install a torch build "
                    "for CUDA 12.x")
    assert "cannot run" not in gpu_unavailable_message("2.8.0", "12.6", "535.216.03", "12.2")


def test_yolo_device_cpu_does_not_slip_past_the_requirement(no_driver):
    with pytest.raises(GpuUnavailable, match="YOLO_DEVICE=cpu"):
        pick_device(load_settings(YOLO_DEVICE="cpu"), require_gpu=True)


def test_the_slack_thread_says_there_was_no_gpu():
    error = JobError(reason="gpu_unavailable", message="REQUIRE_GPU is set but no CUDA device is visible: "
                                                        "no NVIDIA driver found; torch 2.14.1 built for CUDA 13.0")
    job = Job(tenant_id="t", spec=JobSpec(tenant_id="t"), status=JobStatus.FAILED, error=error)
    text = blocks.failed(job).text + str(blocks.failed(job).blocks)
    assert "no GPU, so it stopped rather than train on the CPU" in text
    assert "gpu_unavailable" in text and "no NVIDIA driver found" in text
    assert EndReason.GPU_UNAVAILABLE.value == "gpu_unavailable"

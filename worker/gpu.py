"""No silent CPU: why a worker that must have a GPU sees none, in words an operator can act on.

With ``REQUIRE_GPU`` (on by default in Cloud Run job executions) a worker that finds no
CUDA device fails its attempt at once (``gpu_unavailable``) instead of training on the
CPU, 10-50x slower and billed as GPU time. The message names the NVIDIA driver (or its
absence) and the CUDA version torch was built for, the usual cause being a torch build
for a newer CUDA than the driver runs. No torch import here: the runner imports this
before the offline environment is prepared.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")


class GpuUnavailable(RuntimeError):
    """A GPU is required (REQUIRE_GPU) and torch sees no CUDA device; the message says why it may be."""


def nvidia_driver() -> tuple[str | None, str | None]:
    """(driver version, the newest CUDA it supports) from the kernel module and nvidia-smi; None where unknown."""
    version = cuda = None
    try:  # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.216.03  ..."
        found = re.search(r"Kernel Module\s+([\d.]+)", DRIVER_VERSION_FILE.read_text())
        version = found.group(1) if found else None
    except OSError:
        pass
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    if match := re.search(r"Driver Version:\s*([\d.]+)", out):
        version = version or match.group(1)
    if match := re.search(r"CUDA Version:\s*([\d.]+)", out):
        cuda = match.group(1)
    return version, cuda


def gpu_unavailable_message(torch_version: str, torch_cuda: str | None, driver: str | None,
                            driver_cuda: str | None) -> str:
    """Why no GPU is usable, in words an operator can act on (driver and torch's CUDA named)."""
    built = f"torch {torch_version} built for CUDA {torch_cuda}" if torch_cuda else \
        f"torch {torch_version} is a CPU-only build (no CUDA)"
    if driver is None:
        seen = "no NVIDIA driver found"
    else:
        seen = f"NVIDIA driver {driver}" + (f" (supports CUDA up to {driver_cuda})" if driver_cuda else "")
    hint = ""
    if torch_cuda and driver_cuda and _major(torch_cuda) > _major(driver_cuda):
        hint = f"; this driver cannot run CUDA {torch_cuda}: install a torch build for CUDA {_major(driver_cuda)}.x"
    return f"REQUIRE_GPU is set but no CUDA device is visible: {seen}; {built}{hint}"


def _major(version: str) -> int:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else 0

"""GPU price table and the cost of a job's billed seconds.

Pure domain code. Cost = billed seconds x (GPU + vCPU + memory rates).

Sources (dated; this machine has no internet, so re-check before quoting prices):
  - Cloud Run pricing, us-central1 Tier 1, instance-based billing, GPU without
    zonal redundancy (https://cloud.google.com/run/pricing, as given in issue 2,
    2026-11): nvidia-l4 $0.0001867 /GPU-s, vCPU $0.000018 /vCPU-s,
    memory $0.000002 /GiB-s.
  - Cloud Run offers no T4, A100 or H100. For those we use Compute Engine's
    on-demand list prices per GPU in us-central1 (https://cloud.google.com/compute/gpus-pricing,
    2025 list, recalled, not re-read here): T4 $0.35/h, A100 80GB $3.93/h,
    H100 80GB $11.06/h, divided by 3600.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# USD per GPU-second.
GPU_PRICE_PER_SECOND: dict[str, float] = {
    "nvidia-l4": 0.0001867,
    "nvidia-t4": 0.35 / 3600,
    "nvidia-a100-80gb": 3.93 / 3600,
    "nvidia-h100-80gb": 11.06 / 3600,
    "cpu": 0.0,
}
VCPU_PRICE_PER_SECOND = 0.000018
GIB_PRICE_PER_SECOND = 0.000002

GPU_TYPES = tuple(GPU_PRICE_PER_SECOND)


def parse_cpu(limit: str) -> float:
    """Kubernetes-style CPU quantity ("4000m", "4", "0.5") to vCPUs."""
    text = str(limit).strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


_MEMORY_UNITS = {
    "": 1 / 2**30,
    "Ki": 1 / 2**20,
    "Mi": 1 / 2**10,
    "Gi": 1.0,
    "Ti": 2**10,
    "K": 1e3 / 2**30,
    "M": 1e6 / 2**30,
    "G": 1e9 / 2**30,
    "T": 1e12 / 2**30,
}


def parse_memory(limit: str) -> float:
    """Kubernetes-style memory quantity ("16Gi", "512Mi", "2G") to GiB."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]i?|)\s*", str(limit))
    if not match:
        raise ValueError(f"memory limit {limit!r} is not a quantity like 16Gi or 512Mi")
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2)]


@dataclass(frozen=True)
class Rates:
    """Per-second prices of one execution's resources."""

    gpu_type: str
    gpu_count: int
    vcpus: float
    memory_gib: float

    @property
    def per_second(self) -> float:
        gpu = GPU_PRICE_PER_SECOND.get(self.gpu_type, 0.0) * self.gpu_count
        return gpu + self.vcpus * VCPU_PRICE_PER_SECOND + self.memory_gib * GIB_PRICE_PER_SECOND

    def cost(self, billed_seconds: float) -> float:
        return round(max(0.0, billed_seconds) * self.per_second, 6)


def rates_for(gpu_type: str, gpu_count: int, cpu_limit: str, memory_limit: str) -> Rates:
    """Rates for a gpu type plus the CPU and memory limits of the worker."""
    count = 0 if gpu_type == "cpu" else max(1, int(gpu_count))
    return Rates(gpu_type, count, parse_cpu(cpu_limit), parse_memory(memory_limit))


def format_usd(amount: float) -> str:
    """Dollars with cents, or more digits for sub-cent amounts."""
    if amount >= 0.01 or amount == 0:
        return f"${amount:,.2f}"
    return f"${amount:.4f}"

"""GPU price table and the cost of a job's billed seconds.

Pure domain code. Cost = billed seconds x (GPU + vCPU + memory rates).

Only hardware a launcher can run is priced (and so accepted in a spec): a Cloud
Run job runs on the one GPU type it was deployed with, so pricing a type it cannot
have would bill an L4 run as something else. Which of these a deployment offers is
decided at submit time (``orchestrator.backends.gpu_types_available``).

Sources (dated; this machine has no internet, so re-check before quoting prices):
  - Cloud Run pricing, us-central1 Tier 1, instance-based billing, GPU without
    zonal redundancy (https://cloud.google.com/run/pricing, as given in issue 2,
    2026-11): nvidia-l4 $0.0001867 /GPU-s, vCPU $0.000018 /vCPU-s,
    memory $0.000002 /GiB-s.
  - Cloud Run's GPU types (https://cloud.google.com/run/docs/configuring/jobs/gpu,
    read 2026-11): nvidia-l4 (driver 535, CUDA 12.2; at least 4 vCPU, 16 GiB) and
    nvidia-rtx-pro-6000 (preview; driver 580, CUDA 13.0; at least 20 vCPU, 80 GiB).
    The RTX PRO 6000's Cloud Run price could not be read here, so it is not in the
    table: add it with its price to offer it. Cloud Run has no T4, A100 or H100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# USD per GPU-second.
GPU_PRICE_PER_SECOND: dict[str, float] = {
    "nvidia-l4": 0.0001867,
    "cpu": 0.0,  # no accelerator: only the vCPU and memory rates
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

"""Cost model: price table, resource parsing, cost of attempts, estimates for CPU runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.config import load_settings
from orchestrator.domain.cost import GPU_PRICE_PER_SECOND, GPU_TYPES, format_usd, parse_cpu, parse_memory, rates_for
from orchestrator.domain.job import Attempt, Job, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.transitions import cost_of


def test_only_hardware_a_launcher_can_run_is_priced():
    # Cloud Run has no T4, A100 or H100: a price for them would bill an L4 run as something else.
    assert set(GPU_PRICE_PER_SECOND) == {"nvidia-l4", "cpu"} == set(GPU_TYPES)
    assert GPU_PRICE_PER_SECOND["nvidia-l4"] == pytest.approx(0.0001867)
    assert GPU_PRICE_PER_SECOND["cpu"] == 0.0


@pytest.mark.parametrize(("text", "vcpus"), [("4000m", 4.0), ("4", 4.0), ("500m", 0.5), ("0.25", 0.25)])
def test_parse_cpu(text, vcpus):
    assert parse_cpu(text) == vcpus


@pytest.mark.parametrize(("text", "gib"), [("16Gi", 16.0), ("512Mi", 0.5), ("1Ti", 1024.0), ("2G", 2e9 / 2**30)])
def test_parse_memory(text, gib):
    assert parse_memory(text) == pytest.approx(gib)


def test_l4_rate_is_gpu_plus_cpu_plus_memory():
    rates = rates_for("nvidia-l4", 1, "4000m", "16Gi")
    assert rates.per_second == pytest.approx(0.0001867 + 4 * 0.000018 + 16 * 0.000002)
    assert rates.cost(3600) == pytest.approx(3600 * rates.per_second, rel=1e-6)
    assert rates_for("cpu", 1, "4000m", "16Gi").gpu_count == 0


def test_cost_of_sums_every_attempt_and_estimates_the_configured_gpu():
    now = utcnow()
    attempts = [
        Attempt(number=1, claimed_at=now, started_at=now - timedelta(seconds=100), ended_at=now - timedelta(seconds=40)),
        Attempt(number=2, claimed_at=now, started_at=now - timedelta(seconds=30), ended_at=now),
        Attempt(number=3, claimed_at=now),  # never started: not billed
    ]
    job = Job(tenant_id="t", spec=JobSpec(tenant_id="t"), attempts=attempts)
    settings = load_settings()
    summary = cost_of(job, settings.rates("cpu"), settings.rates("nvidia-l4"))
    assert summary.billed_seconds == pytest.approx(90)
    assert summary.gpu_type == "cpu"
    assert summary.usd == pytest.approx(90 * settings.rates("cpu").per_second, rel=1e-4)
    assert summary.estimate_gpu_type == "nvidia-l4"
    assert summary.estimate_usd == pytest.approx(90 * settings.rates("nvidia-l4").per_second, rel=1e-4)


def test_format_usd():
    assert format_usd(0) == "$0.00"
    assert format_usd(1234.5) == "$1,234.50"
    assert format_usd(0.00123) == "$0.0012"

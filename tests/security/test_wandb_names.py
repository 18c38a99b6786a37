"""W&B names carry the tenant, so tenants never share an artifact or alias (issue 14, finding 8)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from orchestrator.config import load_settings
from orchestrator.domain.job import Job
from orchestrator.domain.spec import JobSpec
from worker.wandb_log import WandbRun, artifact_name, run_name

WANDB_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def job_of(tenant: str, name: str = "prod") -> Job:
    return Job(tenant_id=tenant, spec=JobSpec(tenant_id=tenant, custom_name=name))


def test_two_tenants_prod_are_different_artifacts():
    assert artifact_name("team-a", "prod") != artifact_name("team-b", "prod")
    assert "team-a" in artifact_name("team-a", "prod") and artifact_name("team-a", "prod").endswith("-prod")
    assert artifact_name("team-a", "prod") == artifact_name("team-a", "prod")  # stable: versions add up


@pytest.mark.parametrize(("one", "other"), [
    (("a:b", "prod"), ("a@b", "prod")),  # tenants that read the same once made W&B-safe
    (("a", "b-prod"), ("a-b", "prod")),  # a name that spells another tenant's prefix
    (("T1", "x" * 100), ("T1", "x" * 99 + "y")),  # long names cut to length stay apart
])
def test_no_two_tenant_names_meet(one, other):
    assert artifact_name(*one) != artifact_name(*other)


@pytest.mark.parametrize(("tenant", "name"), [
    ("team-a", "prod"), ("E0123:T456@corp", "my model / v2 (final)!"), ("x" * 128, "é" * 100), ("t", "..--.."),
])
def test_names_are_valid_for_wandb(tenant, name):
    assert WANDB_NAME.match(artifact_name(tenant, name)), artifact_name(tenant, name)
    assert run_name(job_of(tenant, name)).startswith(f"{tenant}/")


def records_of(sync_dir: Path, expected: str, timeout: float = 20.0) -> bytes:
    """The run's transaction log; W&B's own process writes it, so wait for what we logged to land."""
    deadline = time.monotonic() + timeout
    while True:
        records = b"".join(p.read_bytes() for p in sync_dir.glob("*.wandb"))
        if expected.encode() in records or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


@pytest.mark.slow
def test_offline_runs_of_two_tenants_log_different_artifacts(tmp_path, monkeypatch):
    """Real W&B (offline): what each run wrote names its own tenant's artifact."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    settings = load_settings(LAXAI_HOME=tmp_path / "home", WANDB_MODE="offline")
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"weights")
    logged = {}
    for tenant in ("team-a", "team-b"):
        run = WandbRun.start(settings, job_of(tenant), "cpu")
        reference = run.log_model(checkpoint, "prod", {"task_id": "t"})
        sync_dir = Path(run.reference)
        run.finish(ok=True)
        assert reference is not None, "W&B refused the artifact (or its name)"
        logged[tenant] = (reference, records_of(sync_dir, reference.split(":")[0]))
    (ref_a, records_a), (ref_b, records_b) = logged["team-a"], logged["team-b"]
    assert ref_a != ref_b
    name_a, name_b = ref_a.split(":")[0], ref_b.split(":")[0]
    assert name_a.encode() in records_a and name_b.encode() not in records_a
    assert name_b.encode() in records_b and name_a.encode() not in records_b
    assert b"team-a/prod" in records_a  # the run's display name carries the tenant too

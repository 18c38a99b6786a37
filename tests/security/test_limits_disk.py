"""Disk limits (issue 14, finding 6): synthetic pixel budget, dataset cache pruning, retention, log cap.

Real files, a real SQLite store and registry, real processes: the attack was
``synthetic:10000`` at 2048 px (about 20 GB, cached for ever), runs, logs and artifacts
never pruned, and logs without a cap.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from orchestrator.backends import open_backend
from orchestrator.config import load_settings
from orchestrator.domain.job import Artifacts, Job, Origin, utcnow
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.launchers import logcap
from orchestrator.launchers.local import LOG_CAP_BYTES, LocalProcessLauncher, log_path
from orchestrator.serve import ServiceThread
from orchestrator.registry.base import ModelEntry
from orchestrator.retention import RetentionSweeper
from orchestrator.serve import create_runtime
from orchestrator.service import JobService
from worker import datasets

# -- the pixel budget -----------------------------------------------------------


def test_synthetic_10000_at_2048_px_is_refused_with_422_naming_dataset(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path, LAXAI_API_TOKENS="tok-a-123456:team-a")
    body = {"tenant_id": "team-a", "dataset": "synthetic:10000", "model_params": {"input_size": 2048}}
    with ServiceThread(settings, dispatch=False) as svc:
        response = httpx.post(f"{svc.url}/orchestrate", json=body, headers={"Authorization": "Bearer tok-a-123456"})
        listed = httpx.get(f"{svc.url}/jobs", headers={"Authorization": "Bearer tok-a-123456"})
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["field"] == "dataset"
    assert "2,500,000,000" in detail["message"] and "at most 596" in detail["message"]
    assert listed.json()["jobs"] == []  # nothing stored


# -- the synthetic dataset cache -----------------------------------------------------


def _made(root: Path, count: int, used_ago: float) -> Path:
    """A small real synthetic dataset, last used ``used_ago`` seconds ago (by a worker gone since)."""
    path = root / f"synthetic-{count}-32"
    datasets.write_synthetic(path, count, 32)
    stamp = time.time() - used_ago
    os.utime(path, (stamp, stamp))
    return path


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_the_cache_is_pruned_least_recently_used_first_and_never_a_dataset_in_use(tmp_path):
    root = tmp_path / "datasets"
    oldest, old, recent = _made(root, 8, 3000), _made(root, 9, 2000), _made(root, 10, 1000)
    # A live worker (another process) holds the oldest one.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from worker import datasets; "
                               f"datasets.synthetic(__import__('pathlib').Path({str(root)!r}), 8, 32, "
                               "cache_bytes=10**12); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, cwd=Path(datasets.__file__).parent.parent)
    try:
        assert holder.stdout.readline().strip() == "held"
        os.utime(oldest, (time.time() - 3000, time.time() - 3000))  # the holder touched it: make it oldest again
        # Room for the held one, the new one (a little bigger than `recent`) and one more: one must go.
        limit = _bytes(oldest) + 2 * _bytes(recent) + _bytes(recent) // 4
        fresh = datasets.synthetic(root, 11, 32, cache_bytes=limit).parent
    finally:
        holder.kill()
        holder.wait()
    assert fresh.is_dir() and recent.is_dir()
    assert not old.exists(), "the least recently used unheld dataset goes first"
    assert oldest.is_dir(), "a dataset a live worker holds is never deleted"
    # Once nobody holds it, it is the first to go.
    datasets.synthetic(root, 11, 32, cache_bytes=_bytes(recent) + _bytes(fresh))
    assert not oldest.exists() and recent.is_dir() and fresh.is_dir()
    assert not list(root.glob(".trash-*"))


def test_the_cache_limit_is_a_setting_with_a_20_gib_default():
    assert load_settings().LAXAI_CACHE_BYTES == 20 * 2**30
    assert load_settings(LAXAI_CACHE_BYTES="5Gi").LAXAI_CACHE_BYTES == 5 * 2**30
    with pytest.raises(ValueError, match="LAXAI_CACHE_BYTES"):
        load_settings(LAXAI_CACHE_BYTES="plenty")


# -- retention -----------------------------------------------------------------------


def _files_of(home: Path, task_id: str) -> list[Path]:
    paths = [home / "runs" / task_id / "train" / "weights" / "last.pt", home / "logs" / f"{task_id}.log",
             home / "artifacts" / task_id / "best.pt", home / "artifacts" / task_id / "last.pt",
             home / "wandb" / f"offline-run-20260101_000000-{task_id}" / "run.wandb"]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    return paths


def test_the_retention_sweep_deletes_old_jobs_files_and_keeps_registered_checkpoints(tmp_path):
    settings = load_settings(LAXAI_HOME=tmp_path / "home", LAXAI_RETENTION_DAYS=30)
    backend = open_backend(settings)
    home, now = settings.home, utcnow()

    def stored(status: JobStatus, finished_days_ago: float | None, registered: bool = False) -> Job:
        job = Job(tenant_id="t", spec=JobSpec(tenant_id="t"), status=status,
                  finished_at=None if finished_days_ago is None else now - timedelta(days=finished_days_ago))
        if registered:
            job = job.model_copy(update={"artifacts": Artifacts(registry_name="prod")})
            backend.registry.register(ModelEntry(tenant_id="t", name="prod", task_id=job.task_id,
                                                 architecture="yolo11n",
                                                 checkpoint=str(home / "artifacts" / job.task_id / "best.pt")))
        backend.store.create(job)
        return job

    try:
        old_registered = stored(JobStatus.COMPLETED, 40, registered=True)
        old_failed = stored(JobStatus.FAILED, 31)
        recent = stored(JobStatus.COMPLETED, 5)
        still_running = stored(JobStatus.RUNNING, None)
        files = {job.task_id: _files_of(home, job.task_id)
                 for job in (old_registered, old_failed, recent, still_running)}
        unknown = _files_of(home, "00000000-0000-4000-8000-000000000000")
        result = RetentionSweeper(home, backend.store, backend.registry, days=30).sweep()
    finally:
        backend.close()
    assert result.jobs == {old_registered.task_id, old_failed.task_id}
    assert not any(p.exists() for p in files[old_failed.task_id])
    assert not (home / "runs" / old_failed.task_id).exists() and not (home / "artifacts" / old_failed.task_id).exists()
    kept = home / "artifacts" / old_registered.task_id / "best.pt"
    assert [p for p in files[old_registered.task_id] if p.exists()] == [kept]
    assert result.kept == [kept]
    for task_id in (recent.task_id, still_running.task_id):
        assert all(p.exists() for p in files[task_id])
    assert all(p.exists() for p in unknown), "files of a task the store does not know are not ours to judge"
    assert result.freed_bytes == 9 * 1000


def test_the_service_runs_the_sweep_and_zero_days_turns_it_off(tmp_path):
    def services(**overrides):
        runtime = create_runtime(load_settings(LAXAI_HOME=tmp_path, **overrides))
        try:
            return [svc.name for svc in runtime.background]
        finally:
            runtime.backend.close()

    assert "retention" in services()
    assert "retention" not in services(LAXAI_RETENTION_DAYS=0)


# -- the log cap ---------------------------------------------------------------------


def test_a_jobs_log_keeps_its_last_bytes_under_the_cap(tmp_path):
    chatty = tmp_path / "python"
    chatty.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"[print(f'line {{i:06d}}') for i in range(50000)]\"\n")
    chatty.chmod(0o755)
    cap = 64 * 1024
    settings = load_settings(LAXAI_HOME=tmp_path / "home")
    launcher = LocalProcessLauncher(settings.home, python=str(chatty), log_cap=cap)
    backend = open_backend(settings, launcher)
    try:
        job, _ = JobService(backend).submit(JobSpec(tenant_id="t"), Origin())
        execution = launcher.launch(job, 1)
        deadline = time.monotonic() + 30
        while launcher.exited(execution) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        text = log_path(settings.home, job.task_id).read_text()
        tail = JobService(backend).logs("t", job.task_id, tail=3)
    finally:
        backend.close()
    assert len(text.encode()) <= cap + logcap.slack(cap) + 200  # 50 000 lines were ~600 KB
    assert text.startswith("--- [laxai] log capped")
    assert text.endswith("line 049999\n") and tail[-1] == "line 049999"
    kept = [line for line in text.splitlines()[1:]]
    assert len(kept) * len("line 049999\n") >= cap - 20  # at least the last cap bytes, whole lines only
    assert kept[0].startswith("line ") and len(kept[0]) == len("line 049999")


def test_the_default_log_cap_is_10_mb():
    assert LOG_CAP_BYTES == logcap.DEFAULT_CAP == 10 * 1024 * 1024
    assert LocalProcessLauncher(Path("/nonexistent")).log_cap == 10 * 1024 * 1024

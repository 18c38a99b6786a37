"""Deploy files: deploy.sh --dry-run uses the config values; cloudbuild.yaml and the Dockerfile name both images."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from orchestrator.config import REPO_ROOT


def dry_run(*args: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in {"GPU_TYPE", "CPU_LIMIT", "MEMORY_LIMIT", "GPU_COUNT"}}
    result = subprocess.run(["bash", str(REPO_ROOT / "deploy.sh"), *args, "--dry-run"], capture_output=True,
                            text=True, env={**clean, "GOOGLE_CLOUD_PROJECT": "proj-1", **env}, check=True)
    return result.stdout + result.stderr


def test_dry_run_prints_every_command_with_the_config_values():
    out = dry_run()
    assert "_GPU_TYPE=nvidia-l4" in out and "_CPU_LIMIT=4000m" in out and "_MEMORY_LIMIT=16Gi" in out
    assert "_REGISTRY_REPO=laxai-repo" in out and "--region=us-central1" in out
    assert "googlebatch@proj-1.iam.gserviceaccount.com" in out
    assert "gcloud pubsub subscriptions create training-jobs-sub" in out
    assert "--push-auth-service-account=googlebatch@proj-1.iam.gserviceaccount.com" in out
    assert "--dead-letter-topic=training-jobs-dead-letter" in out
    assert "type=google.cloud.firestore.document.v1.written" in out
    assert "gcloud scheduler jobs create http laxai-dispatch-tick" in out and "/tasks/tick" in out
    assert "EVENTARC_AUDIENCE=" in out and "TICK_AUDIENCE=" in out
    assert all(line.startswith(("+", " ", "Deploying", "Service")) for line in out.splitlines() if line)


def test_environment_overrides_the_config_file():
    out = dry_run("worker", GPU_TYPE="nvidia-t4", MEMORY_LIMIT="32Gi")
    assert "_GPU_TYPE=nvidia-t4" in out and "_MEMORY_LIMIT=32Gi" in out and "_COMPONENT=worker" in out
    assert "gcloud pubsub" not in out and "eventarc triggers" not in out  # the worker needs no service wiring


def test_bad_arguments_are_refused():
    result = subprocess.run(["bash", str(REPO_ROOT / "deploy.sh"), "everything"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown argument" in result.stderr


def test_cloudbuild_builds_and_deploys_both_images():
    build = yaml.safe_load((REPO_ROOT / "cloudbuild.yaml").read_text())
    steps = {step["id"]: " ".join(step["args"]) for step in build["steps"]}
    assert "laxai-service" in build["substitutions"]["_SERVICE_IMAGE"]
    assert "laxai-worker" in build["substitutions"]["_WORKER_IMAGE"]
    assert "--target service" in steps["build-service"] and "--target worker" in steps["build-worker"]
    assert "gcloud run deploy" in steps["deploy-service"]
    assert "LAXAI_DISPATCH=push" in steps["deploy-service"] and "LAXAI_CHANGE_FEED=eventarc" in steps["deploy-service"]
    worker = steps["deploy-worker"]
    for flag in ("--gpu=${_GPU_COUNT}", "--gpu-type=${_GPU_TYPE}", "--cpu=${_CPU_LIMIT}", "--memory=${_MEMORY_LIMIT}",
                 "--task-timeout=${_TASK_TIMEOUT}s", "--max-retries=0"):
        assert flag in worker


def test_dockerfile_has_a_slim_service_and_a_worker_stage():
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, flags=re.M)
    assert {"service", "worker"} <= set(stages)
    service = text.split("AS service")[1].split("FROM ")[0]
    assert '".[gcp]"' in service and "worker" not in service.split("pip install")[1].split("\n")[0]

"""Deploy files: deploy.sh --dry-run uses the config values; cloudbuild.yaml and the Dockerfile name both
images; the worker image is a CUDA 12 torch build that runs as a user, and the build fails otherwise."""

from __future__ import annotations

import os
import re
import subprocess
import sys

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
    assert "laxai-service@proj-1.iam.gserviceaccount.com" in out and "laxai-worker@proj-1.iam.gserviceaccount.com" in out
    assert "gcloud pubsub subscriptions create training-jobs-sub" in out
    assert "--push-auth-service-account=laxai-service@proj-1.iam.gserviceaccount.com" in out
    assert "--dead-letter-topic=training-jobs-dead-letter" in out
    assert "type=google.cloud.firestore.document.v1.written" in out
    assert "gcloud scheduler jobs create http laxai-dispatch-tick" in out and "/tasks/tick" in out
    assert "EVENTARC_AUDIENCE=" in out and "TICK_AUDIENCE=" in out
    assert all(line.startswith(("+", " ", "#", "Deploying", "Service")) for line in out.splitlines() if line)


def test_environment_overrides_the_config_file():
    out = dry_run("worker", GPU_TYPE="nvidia-rtx-pro-6000", MEMORY_LIMIT="32Gi")
    assert "_GPU_TYPE=nvidia-rtx-pro-6000" in out and "_MEMORY_LIMIT=32Gi" in out and "_COMPONENT=worker" in out
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
                 "--task-timeout=${_TASK_TIMEOUT}s", "--max-retries=0", "--no-gpu-zonal-redundancy", "REQUIRE_GPU=1",
                 "type=in-memory,size-limit=${_SCRATCH_LIMIT}", "LAXAI_HOME=/var/laxai"):
        assert flag in worker
    # Settings are added or changed, never wiped (deploy.sh sets the OIDC audiences on the service).
    for step in (steps["deploy-service"], worker):
        assert "--update-env-vars" in step and "--set-env-vars" not in step and "--set-secrets" not in step
    assert "--max-instances=${_MAX_INSTANCES}" in steps["deploy-service"]


def test_dockerfile_has_a_slim_service_and_a_worker_stage():
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)", text, flags=re.M)
    assert {"service", "worker"} <= set(stages)
    service = text.split("AS service")[1].split("FROM ")[0]
    assert '".[gcp]"' in service and "worker" not in service.split("pip install")[1].split("\n")[0]


def worker_stage() -> str:
    text = (REPO_ROOT / "Dockerfile").read_text()
    return text.split("AS worker", 1)[1]


def pins() -> dict[str, str]:
    lines = (REPO_ROOT / "constraints.txt").read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if line.startswith(("torch==", "torchvision==")))


def test_the_worker_installs_torch_built_for_cuda_12_from_pytorchs_index():
    stage = worker_stage()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", stage, flags=re.M))
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu12\d", args["TORCH_INDEX_URL"])
    cuda_tag = args["TORCH_INDEX_URL"].rsplit("/", 1)[1]
    # The same versions as constraints.txt, so the project install after it keeps this build.
    assert (args["TORCH_VERSION"], args["TORCHVISION_VERSION"]) == (pins()["torch"], pins()["torchvision"])
    install = next(line for line in stage.splitlines() if "--index-url" in line)
    assert f'"torch==${{TORCH_VERSION}}+{cuda_tag}"' in install
    assert f'"torchvision==${{TORCHVISION_VERSION}}+{cuda_tag}"' in install
    assert stage.index(install) < stage.index('pip install -c constraints.txt ".[worker,gcp]"')


def test_the_worker_build_fails_unless_torch_is_a_cuda_12_build():
    stage = worker_stage()
    check = next(line for line in stage.splitlines() if "torch.version.cuda" in line)
    assert check.startswith("RUN python -c")
    # After the last pip install: nothing installed later can swap the build.
    assert stage.rindex("pip install") < stage.index(check)
    code = re.search(r'python -c "(.*)"$', check).group(1)
    for cuda, ok in (("12.6", True), ("12.8", True), ("13.0", False), (None, False)):
        fake = f"import types, sys; sys.modules['torch'] = types.SimpleNamespace(__version__='2.14.1', " \
               f"version=types.SimpleNamespace(cuda={cuda!r}))\n"
        result = subprocess.run([sys.executable, "-c", fake + code], capture_output=True, text=True)
        assert (result.returncode == 0) is ok, (cuda, result.stderr)
        if not ok:
            assert "not 12.x" in result.stderr


def test_the_worker_image_runs_as_a_user_not_root():
    stage = worker_stage()
    users = re.findall(r"^USER (\S+)", stage, flags=re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert stage.rindex("USER ") > stage.rindex("RUN ")  # nothing after it runs as root


@pytest.mark.parametrize("cuda, expect, message", [("13.0", "", "built for CUDA 13.0, expected 12.x"),
                                                   ("12.6", "", "sees no GPU"),
                                                   ("13.0", "13", "sees no GPU")])
def test_gpu_check_asserts_the_cuda_build_before_measuring(tmp_path, cuda, expect, message):
    for stub in ("torch", "ultralytics", "polars"):  # stand-ins, so the check runs without a GPU stack
        (tmp_path / stub).mkdir()
        (tmp_path / stub / "__init__.py").write_text("")
    (tmp_path / "torch" / "__init__.py").write_text(
        "import types\n__version__ = '2.14.1'\nversion = types.SimpleNamespace(cuda=%r)\n"
        "cuda = types.SimpleNamespace(is_available=lambda: False)\n" % cuda)
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(tmp_path), "OUT": str(tmp_path / "out")}
    if expect:
        env["EXPECT_CUDA"] = expect
    result = subprocess.run(["bash", str(REPO_ROOT / "bench" / "gpu_check.sh")], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "out").exists()  # stopped before measuring anything

"""The fake gcloud's Cloud Run and Cloud Build commands, and ``docker`` inside a build.

``run deploy`` / ``run jobs deploy`` check the caller may deploy and act as the runtime account, the
image was pushed, and the runtime account can read every secret; env vars and secrets follow gcloud's
set/update/remove/clear semantics. ``builds submit`` runs the config's steps with bash as the build's
service account, after Cloud Build's substitution (``$$`` is a dollar; an unknown ``$NAME`` fails).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.gcloud_resources import secret, version_number
from tests.fakes.gcloud_state import (Call, Refused, caller_may, load_state, member_may, require_account,
                                      require_act_as, roles_of, save_state, split_dict, split_list)

GPU_TYPES = {"nvidia-l4", "nvidia-rtx-pro-6000"}


# -- Cloud Run ---------------------------------------------------------------------------------


def mebibytes(quantity: str) -> float:
    units = {"Gi": 1024, "Mi": 1, "G": 1e9 / 2**20, "M": 1e6 / 2**20}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * factor
    raise Refused(f"bad quantity {quantity!r}", 2)

def cpus(value: str) -> float:
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)

def apply_dict_flags(call: Call, current: dict[str, str], name: str) -> dict[str, str]:
    """--set-X replaces, --update-X merges, --remove-X and --clear-X drop (X: env-vars or secrets)."""
    result = dict(current)
    if call.has(f"clear-{name}"):
        result = {}
    if call.has(f"set-{name}"):
        result = {}
        for raw in call.flags[f"set-{name}"]:
            result.update(split_dict(raw))
    for raw in call.flags.get(f"update-{name}", []):
        result.update(split_dict(raw))
    for raw in call.flags.get(f"remove-{name}", []):
        for key in split_list(raw):
            result.pop(key, None)
    return result

def check_secrets(call: Call, secrets: dict[str, str], account: str) -> None:
    member = f"serviceAccount:{account}"
    for variable, reference in secrets.items():
        name, _, version = reference.partition(":")
        entry = secret(call, name)
        version_number(call, entry, name, version or "latest")
        if "roles/secretmanager.secretAccessor" not in roles_of(entry["iam"], member) | roles_of(call.state["iam"], member):
            raise Refused(f"spec.template.spec.containers[0].env[{variable}].value_from.secret_key_ref.name: "
                          f"Permission denied on secret: projects/{call.state['number']}/secrets/{name}/versions/"
                          f"{version or 'latest'} for Revision service account {account}. The service account "
                          "used must be granted the 'Secret Manager Secret Accessor' role "
                          "(roles/secretmanager.secretAccessor) at the secret, project or higher level.")

def check_image(call: Call, image: str | None) -> None:
    if not image:
        raise Refused("--image is required", 2)
    name = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    if name not in call.state["images"]:
        raise Refused(f"Image '{image}' not found.")

def runtime_account(call: Call, current: dict[str, Any] | None) -> str:
    account = call.flag("service-account") or (current or {}).get("serviceAccount") \
        or f"{call.state['number']}-compute@developer.gserviceaccount.com"
    require_account(call, account)
    require_act_as(call, account)
    return account

def deploy_common(call: Call, current: dict[str, Any] | None) -> dict[str, Any]:
    if not caller_may(call, {"roles/run.developer", "roles/run.admin"}):
        raise Refused(f"PERMISSION_DENIED: {call.caller} lacks run.services.create/update (Cloud Run Developer)")
    entry = dict(current or {"iam": {}, "env": {}, "secrets": {}})
    entry["serviceAccount"] = runtime_account(call, current)
    if call.has("image") or not current:
        check_image(call, call.flag("image"))
        entry["image"] = call.flag("image")
    entry["env"] = apply_dict_flags(call, entry.get("env", {}), "env-vars")
    entry["secrets"] = apply_dict_flags(call, entry.get("secrets", {}), "secrets")
    check_secrets(call, entry["secrets"], entry["serviceAccount"])
    for key in ("cpu", "memory", "max-instances", "min-instances", "gpu", "gpu-type", "task-timeout", "max-retries"):
        if call.has(key):
            entry[key] = call.flag(key)
    return entry

def run_deploy(call: Call) -> None:
    key = f"{call.flag('region')}/{call.arg()}"
    current = call.state["services"].get(key)
    entry = deploy_common(call, current)
    if current is None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        entry["url"] = f"https://{call.arg()}-{digest}-uc.a.run.app"
    call.state["services"][key] = entry

def service_describe(call: Call) -> Any:
    found = call.state["services"].get(f"{call.flag('region')}/{call.arg()}")
    if found is None:
        raise Refused(f"Cannot find service [{call.arg()}]")
    env = [{"name": k, "value": v} for k, v in found["env"].items()]
    return {"metadata": {"name": call.arg()}, "status": {"url": found["url"]},
            "spec": {"template": {"spec": {"serviceAccountName": found["serviceAccount"],
                                           "containers": [{"image": found["image"], "env": env}]}}}}

def service_update(call: Call) -> None:
    key = f"{call.flag('region')}/{call.arg()}"
    if key not in call.state["services"]:
        raise Refused(f"Cannot find service [{call.arg()}]")
    call.state["services"][key] = deploy_common(call, call.state["services"][key])

def volumes(call: Call, entry: dict[str, Any], memory: float) -> dict[str, Any]:
    found = {} if call.has("clear-volumes") else dict(entry.get("volumes", {}))
    mounts = {} if call.has("clear-volume-mounts") else dict(entry.get("mounts", {}))
    for raw in call.flags.get("add-volume", []):
        volume = split_dict(raw)
        if volume.get("type") == "cloud-storage" and volume.get("bucket") not in call.state["buckets"]:
            raise Refused(f"Cloud Storage bucket {volume.get('bucket')} of volume {volume['name']} does not exist")
        if volume.get("type") == "in-memory" and mebibytes(volume.get("size-limit", "0Mi")) >= memory:
            raise Refused(f"in-memory volume {volume['name']}: size-limit must be below the memory limit")
        found[volume["name"]] = volume
    for raw in call.flags.get("add-volume-mount", []):
        mount = split_dict(raw)
        if mount["volume"] not in found:
            raise Refused(f"volume mount {mount['mount-path']}: no volume named {mount['volume']}")
        mounts[mount["mount-path"]] = mount["volume"]
    return {"volumes": found, "mounts": mounts}

def jobs_deploy(call: Call) -> None:
    key = f"{call.flag('region')}/{call.arg()}"
    current = call.state["jobs"].get(key)
    entry = deploy_common(call, current)
    memory = mebibytes(entry.get("memory", "512Mi"))
    if int(entry.get("gpu", "0")) > 0:
        if entry.get("gpu-type") not in GPU_TYPES:
            raise Refused(f"--gpu-type must be one of {sorted(GPU_TYPES)}")
        if cpus(entry.get("cpu", "1")) < 4 or memory < 16 * 1024:
            raise Refused("A GPU needs at least 4 CPUs and 16Gi of memory")
        entry["gpuZonalRedundancy"] = not call.has("no-gpu-zonal-redundancy")
    entry.update(volumes(call, entry, memory))
    call.state["jobs"][key] = entry

def job_describe(call: Call) -> Any:
    found = call.state["jobs"].get(f"{call.flag('region')}/{call.arg()}")
    if found is None:
        raise Refused(f"Cannot find job [{call.arg()}]")
    return found


# -- Cloud Build -------------------------------------------------------------------------------


def substitute(text: str, values: dict[str, str]) -> str:
    """Cloud Build's substitution: ``$$`` is a dollar; any other ``$NAME``/``${NAME}`` must be known."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(2)
        if name not in values:
            raise Refused(f"INVALID_ARGUMENT: key in the template \"{name}\" is not a valid built-in substitution")
        return values[name]
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, text)

def build_values(config: dict[str, Any], given: dict[str, str], project: str, number: str, region: str) -> dict[str, str]:
    values = {"PROJECT_ID": project, "PROJECT_NUMBER": number, "BUILD_ID": uuid.uuid4().hex, "LOCATION": region}
    user = {**{k: str(v) for k, v in (config.get("substitutions") or {}).items()}, **given}
    for name in given:
        if name not in (config.get("substitutions") or {}):
            raise Refused(f"INVALID_ARGUMENT: substitution {name} is not used by the build config")
    for _ in range(3):  # dynamic substitutions may refer to each other
        values.update({k: substitute(v, {**values, **user}) for k, v in user.items()})
        user = {k: values[k] for k in user}
    return values

def step_scripts(config: dict[str, Any], values: dict[str, str]) -> list[tuple[str, str, list[str]]]:
    """(id, builder image, substituted args) of each step, in order."""
    return [(step.get("id", str(i)), step["name"], [substitute(str(arg), values) for arg in step.get("args", [])])
            for i, step in enumerate(config["steps"])]

def builds_submit(call: Call) -> None:
    config = yaml.safe_load(Path(call.flag("config", "cloudbuild.yaml")).read_text())
    account = call.flag("service-account", "")
    email = account.rsplit("/", 1)[-1]
    if email:
        require_account(call, email)
        require_act_as(call, email)
        if not (config.get("options") or {}).get("logging") and not config.get("logsBucket"):
            raise Refused("INVALID_ARGUMENT: if 'build.service_account' is specified, the build must either (a) "
                          "specify 'build.logs_bucket', (b) use the REGIONAL_USER_OWNED_BUCKET "
                          "build.options.default_logs_bucket_behavior option, or (c) use either CLOUD_LOGGING_ONLY / "
                          "NONE logging options")
    staging = call.flag("gcs-source-staging-dir")
    if staging:
        bucket = staging.removeprefix("gs://").split("/")[0]
        if bucket not in call.state["buckets"]:
            raise Refused(f"bucket {bucket} for the source does not exist")
        if email and not member_may(call.state, f"serviceAccount:{email}", {"roles/storage.objectViewer",
                                    "roles/storage.objectAdmin"}, call.state["buckets"][bucket]["iam"]):
            raise Refused(f"PERMISSION_DENIED: {email} cannot read the source in gs://{bucket} "
                          "(storage.objects.get)")
    values = build_values(config, split_dict(call.flag("substitutions", "")), call.project, call.state["number"],
                          call.flag("region", "global"))
    call.state["builds"].append({"id": values["BUILD_ID"], "serviceAccount": email})
    save_state(call.state)  # the steps' own gcloud calls read and write it
    env = {**os.environ, "FAKE_GCLOUD_CALLER": f"serviceAccount:{email}" if email else
           f"serviceAccount:{call.state['number']}@cloudbuild.gserviceaccount.com",
           "PROJECT_ID": call.project, "BUILD_ID": values["BUILD_ID"]}
    for step_id, _image, args in step_scripts(config, values):
        done = subprocess.run(["bash", *args], env=env, capture_output=True, text=True)
        sys.stderr.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise Refused(f"build step {step_id} failed (exit {done.returncode})")
    call.state.clear()
    call.state.update(load_state())

def docker(argv: list[str], state: dict[str, Any]) -> None:
    """``docker build`` does nothing; ``docker push [--all-tags] IMAGE`` records it in its repository."""
    if argv[:1] != ["push"]:
        return
    image = argv[-1]
    host, project, repo, *_ = image.split("/")
    key = f"{host.removesuffix('-docker.pkg.dev')}/{repo}"
    if key not in state["repositories"] or project != state["project"]:
        raise Refused(f"name unknown: Repository \"{repo}\" not found")
    call = Call("docker push", [], {}, state)
    if not caller_may(call, {"roles/artifactregistry.writer", "roles/artifactregistry.admin"},
                      state["repositories"][key]["iam"]):
        raise Refused(f"denied: Permission \"artifactregistry.repositories.uploadArtifacts\" denied on {repo}")
    state["images"][image.split(":")[0]] = True

"""The fake gcloud's project state, one parsed call, and the checks every command shares.

State is a JSON file (``FAKE_GCLOUD_STATE``) modelling one project: enabled APIs, IAM policies on the
project and on each resource, and the resources themselves. Each call loads it, changes it, saves it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

API_OF_GROUP = {"iam": "iam", "firestore": "firestore", "storage": "storage", "artifacts": "artifactregistry",
                "secrets": "secretmanager", "pubsub": "pubsub", "builds": "cloudbuild", "run": "run",
                "eventarc": "eventarc", "scheduler": "cloudscheduler"}

DEPLOYER = "user:deployer@example.com"


class Refused(Exception):
    """What gcloud would print as ``ERROR: (gcloud.x.y) ...``; exit code 1 (2 for usage errors)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# -- state -------------------------------------------------------------------------------------


def fresh_project(project: str) -> dict[str, Any]:
    number = str(int(hashlib.sha256(project.encode()).hexdigest(), 16) % 10**12).rjust(12, "1")
    return {"project": project, "number": number, "apis": [], "iam": {}, "service_accounts": {},
            "databases": {}, "indexes": [], "field_overrides": {}, "buckets": {}, "repositories": {},
            "images": {}, "secrets": {}, "topics": {}, "subscriptions": {}, "services": {}, "jobs": {},
            "triggers": {}, "scheduler": {}, "builds": []}

def load_state() -> dict[str, Any]:
    path = Path(os.environ["FAKE_GCLOUD_STATE"])
    if not path.exists():
        return fresh_project(os.environ.get("FAKE_GCLOUD_PROJECT", "proj-1"))
    return json.loads(path.read_text())

def save_state(state: dict[str, Any]) -> None:
    path = Path(os.environ["FAKE_GCLOUD_STATE"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, path)

def log(entry: dict[str, Any]) -> None:
    target = os.environ.get("FAKE_GCLOUD_LOG")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps(entry) + "\n")


# -- one call ----------------------------------------------------------------------------------


class Call:
    """One parsed invocation: the command path, positionals and flags (repeatable ones as lists)."""

    def __init__(self, command: str, positionals: list[str], flags: dict[str, list[str]], state: dict[str, Any]):
        self.command, self.positionals, self.flags, self.state = command, positionals, flags, state
        self.caller = os.environ.get("FAKE_GCLOUD_CALLER", DEPLOYER)

    def flag(self, name: str, default: str | None = None) -> str | None:
        values = self.flags.get(name)
        return values[-1] if values else default

    def has(self, name: str) -> bool:
        return name in self.flags

    def arg(self, index: int = 0) -> str:
        if len(self.positionals) <= index:
            raise Refused(f"argument is required for {self.command}", 2)
        return self.positionals[index]

    @property
    def project(self) -> str:
        return self.flag("project") or self.state["project"]

def split_list(value: str) -> list[str]:
    """gcloud's list/dict flag values, with its ``^D^`` custom delimiter."""
    delimiter = ","
    match = re.match(r"\^(.+?)\^", value)
    if match:
        delimiter, value = match.group(1), value[match.end():]
    return [item for item in value.split(delimiter) if item != ""]

def split_dict(value: str) -> dict[str, str]:
    pairs = {}
    for item in split_list(value):
        key, eq, val = item.partition("=")
        if not eq:
            raise Refused(f"bad KEY=VALUE item: {item!r}", 2)
        pairs[key] = val
    return pairs


# -- checks ------------------------------------------------------------------------------------


def require_api(call: Call) -> None:
    group = call.command.split()[0]
    api = API_OF_GROUP.get(group)
    if api and f"{api}.googleapis.com" not in call.state["apis"]:
        raise Refused(f"{api}.googleapis.com has not been used in project {call.project} before or it is "
                      f"disabled. Enable it by visiting the console, then retry. [SERVICE_DISABLED]")

def account_email(call: Call, name: str) -> str:
    return name if "@" in name else f"{name}@{call.project}.iam.gserviceaccount.com"

def require_account(call: Call, email: str) -> None:
    if email not in call.state["service_accounts"]:
        raise Refused(f"Service account {email} does not exist. [NOT_FOUND]")

def require_member(call: Call, member: str) -> None:
    kind, _, who = member.partition(":")
    if kind == "serviceAccount" and who.endswith(".iam.gserviceaccount.com") and who not in call.state["service_accounts"]:
        raise Refused(f"Service account {who} does not exist. [INVALID_ARGUMENT]")
    if kind == "serviceAccount" and "@gcp-sa-" in who and who not in call.state["service_accounts"]:
        raise Refused(f"Service account {who} does not exist. [INVALID_ARGUMENT]")

def roles_of(policy: dict[str, list[str]], member: str) -> set[str]:
    return {role for role, members in policy.items() if member in members}

def member_may(state: dict[str, Any], member: str, role_options: set[str], *policies: dict[str, list[str]]) -> bool:
    """Whether the member holds one of the roles on the project or on one of the resources."""
    if member.startswith("user:"):
        return True  # the deployer: Owner, or the deployer roles the README lists
    held = set().union(*(roles_of(p, member) for p in (state["iam"], *policies)))
    return bool(held & (role_options | {"roles/owner", "roles/editor"}))

def caller_may(call: Call, role_options: set[str], *policies: dict[str, list[str]]) -> bool:
    return member_may(call.state, call.caller, role_options, *policies)

def require_act_as(call: Call, email: str) -> None:
    if not caller_may(call, {"roles/iam.serviceAccountUser"}, call.state["service_accounts"][email]["iam"]):
        raise Refused(f"PERMISSION_DENIED: {call.caller} lacks iam.serviceAccounts.actAs on {email}")


# -- IAM policies on any resource --------------------------------------------------------------


def policy_of(call: Call) -> dict[str, list[str]]:
    kind = " ".join(call.command.split()[:-1])
    state, name = call.state, call.arg()
    if kind == "projects":
        return state["iam"]
    found = {
        "iam service-accounts": lambda: state["service_accounts"].get(name),
        "storage buckets": lambda: state["buckets"].get(name.removeprefix("gs://")),
        "artifacts repositories": lambda: state["repositories"].get(f"{call.flag('location')}/{name}"),
        "secrets": lambda: state["secrets"].get(name),
        "pubsub topics": lambda: state["topics"].get(name),
        "pubsub subscriptions": lambda: state["subscriptions"].get(name),
        "run services": lambda: state["services"].get(f"{call.flag('region')}/{name}"),
        "run jobs": lambda: state["jobs"].get(f"{call.flag('region')}/{name}"),
    }[kind]()
    if found is None:
        raise Refused(f"{kind} {name} not found [NOT_FOUND]")
    return found["iam"]

def get_iam_policy(call: Call) -> Any:
    policy = policy_of(call)
    return {"bindings": [{"role": role, "members": sorted(members)} for role, members in sorted(policy.items())],
            "etag": "BwY="}

def add_iam_policy_binding(call: Call) -> Any:
    member, role = call.flag("member"), call.flag("role")
    if not member or not role:
        raise Refused("--member and --role are required", 2)
    if call.command.startswith("projects") and not call.has("condition"):
        raise Refused("Adding a binding without specifying a condition to a policy containing conditions "
                      "is prohibited in non-interactive mode. Run the command again with `--condition=None`", 2)
    require_member(call, member)
    policy = policy_of(call)
    policy.setdefault(role, [])
    if member not in policy[role]:
        policy[role].append(member)
    return get_iam_policy(call)

"""A stateful fake of the ``gcloud`` CLI (and ``docker`` inside Cloud Build): a fresh Google Cloud
project kept in a JSON file, for testing ``deploy.sh`` and ``cloudbuild.yaml`` without a project.

It refuses what the real one refuses on a fresh project: a command of an API that is not enabled;
a secret, service account, bucket, repository, topic, database, service or job that does not exist;
an IAM member that is a service account that does not exist; deploying with a secret the runtime
account cannot read (no ``secretAccessor``); a Firestore trigger whose location is not the
database's; a flag the command does not accept (the per-command table ``gcloud_flags.json`` is the
SDK's own ``--help``, plus ``CURRENT_REFERENCE`` for flags of later releases); Cloud Build's account
deploying or pushing without the roles for it. ``builds submit`` runs the config's steps with bash,
this fake first on PATH, as the build's service account (``docker build`` does nothing, ``docker
push`` records the image).

Environment: ``FAKE_GCLOUD_STATE`` (the JSON file; created as a fresh project ``FAKE_GCLOUD_PROJECT``),
``FAKE_GCLOUD_LOG`` (one JSON line per call: argv, caller, whether it succeeded),
``FAKE_GCLOUD_CALLER`` (``user:...``, the deployer, allowed everything; or ``serviceAccount:...``).
Used through executable wrappers named ``gcloud`` and ``docker`` put first on PATH, each running
``python -m tests.fakes.fake_gcloud`` from the repository root with ``FAKE_GCLOUD_PROGRAM`` set
(``tests/deploy/gcloud_fixture.py`` writes them). This module parses and answers; the commands live in
``gcloud_resources`` and ``gcloud_run_build``, the state and shared checks in ``gcloud_state``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import yaml

from tests.fakes import gcloud_resources as res
from tests.fakes import gcloud_run_build as run
from tests.fakes.gcloud_state import (DEPLOYER, Call, Refused, add_iam_policy_binding, get_iam_policy, load_state,
                                      log, require_api, save_state)

FLAG_TABLE = Path(__file__).with_name("gcloud_flags.json")

GLOBAL_FLAGS = {"access-token-file", "account", "billing-project", "configuration", "flags-file", "flatten",
                "format", "help", "impersonate-service-account", "log-http", "project", "quiet",
                "trace-token", "user-output-enabled", "verbosity"}

# Flags the current reference (docs.cloud.google.com/sdk/gcloud/reference) has beyond SDK 528.
CURRENT_REFERENCE = {"run jobs deploy": {"gpu", "gpu-type", "gpu-zonal-redundancy", "no-gpu-zonal-redundancy",
                                         "startup-probe"}}


# -- the command line --------------------------------------------------------------------------


def flag_table() -> dict[str, set[str]]:
    table = {cmd: set(flags) for cmd, flags in json.loads(FLAG_TABLE.read_text()).items() if not cmd.startswith("_")}
    for cmd, extra in CURRENT_REFERENCE.items():
        table[cmd] = table.get(cmd, set()) | extra
    return table

def parse(argv: list[str], table: dict[str, set[str]], state: dict[str, Any]) -> Call:
    words = [w for w in argv if not w.startswith("-")]
    command = next((" ".join(words[:n]) for n in range(len(words), 0, -1) if " ".join(words[:n]) in table), None)
    if command is None:
        raise Refused(f"fake gcloud does not model: {' '.join(words[:4])}", 2)
    positionals, flags = [], {}
    rest = argv[:]
    for word in command.split():
        rest.remove(word)
    accepted = table[command] | GLOBAL_FLAGS
    for token in rest:
        if not token.startswith("--"):
            positionals.append(token)
            continue
        name, eq, value = token[2:].partition("=")
        if name not in accepted:
            raise Refused(f"unrecognized arguments: --{name}", 2)
        flags.setdefault(name, []).append(value if eq else "true")
    return Call(command, positionals, flags, state)


# -- output ------------------------------------------------------------------------------------


def lookup(obj: Any, path: str) -> Any:
    for part in path.split("."):
        match = re.fullmatch(r"(.+?)\[(\d+)\]", part)
        key, index = (match.group(1), int(match.group(2))) if match else (part, None)
        obj = obj.get(key) if isinstance(obj, dict) else None
        if index is not None:
            obj = obj[index] if isinstance(obj, list) and len(obj) > index else None
    return obj

def flatten(rows: list[dict[str, Any]], spec: str | None) -> list[dict[str, Any]]:
    if spec != "bindings[].members":
        return rows
    out = []
    for row in rows:
        for binding in row.get("bindings", []):
            out += [{"bindings": {"role": binding["role"], "members": member}} for member in binding["members"]]
    return out

def keep(row: dict[str, Any], expression: str | None) -> bool:
    if not expression:
        return True
    for term in expression.split(" AND "):
        key, _, value = term.strip().partition("=")
        if str(lookup(row, key.strip())) != value.strip().strip('"'):
            return False
    return True

def render(result: Any, call: Call) -> str:
    rows = result if isinstance(result, list) else [result]
    rows = [row for row in flatten(rows, call.flag("flatten")) if keep(row, call.flag("filter"))]
    fmt = call.flag("format") or ""
    match = re.fullmatch(r"value\((.+)\)", fmt)
    if match:
        lines = []
        for row in rows:
            values = [lookup(row, field.strip()) for field in match.group(1).split(",")]
            lines.append("\t".join(";".join(map(str, v)) if isinstance(v, list) else "" if v is None else str(v)
                                   for v in values))
        return "\n".join(lines) + ("\n" if lines else "")
    if fmt == "json":
        return json.dumps(result if not isinstance(result, list) else rows, indent=2) + "\n"
    return yaml.safe_dump(result, sort_keys=False)


# -- dispatch ----------------------------------------------------------------------------------


HANDLERS: dict[str, Callable[[Call], Any]] = {
    "services list": res.services_list, "services enable": res.services_enable, "projects describe": res.projects_describe,
    "iam service-accounts describe": res.account_describe, "iam service-accounts create": res.account_create,
    "firestore databases describe": res.databases_describe, "firestore databases create": res.databases_create,
    "firestore indexes composite create": res.composite_create, "firestore indexes composite list": res.composite_list,
    "firestore indexes fields describe": res.fields_describe, "firestore indexes fields update": res.fields_update,
    "storage buckets describe": res.bucket_describe, "storage buckets create": res.bucket_create,
    "artifacts repositories describe": res.repository_describe, "artifacts repositories create": res.repository_create,
    "secrets describe": res.secrets_describe, "secrets create": res.secrets_create, "secrets versions add": res.versions_add,
    "secrets versions access": res.versions_access, "secrets versions describe": res.versions_describe,
    "pubsub topics describe": res.topic_describe, "pubsub topics create": res.topic_create,
    "pubsub subscriptions describe": res.subscription_describe, "pubsub subscriptions create": res.subscription_create,
    "eventarc triggers describe": res.trigger_describe, "eventarc triggers create": res.trigger_create,
    "scheduler jobs describe": res.scheduler_describe, "scheduler jobs create http": res.scheduler_create,
    "run deploy": run.run_deploy, "run services describe": run.service_describe, "run services update": run.service_update,
    "run jobs deploy": run.jobs_deploy, "run jobs describe": run.job_describe, "builds submit": run.builds_submit,
}

def handler_for(command: str) -> Callable[[Call], Any]:
    if command.endswith(" get-iam-policy"):
        return get_iam_policy
    if command.endswith(" add-iam-policy-binding"):
        return add_iam_policy_binding
    return HANDLERS[command]

def main(argv: list[str], program: str = "gcloud") -> int:
    state = load_state()
    entry = {"program": program, "argv": argv, "caller": os.environ.get("FAKE_GCLOUD_CALLER", DEPLOYER)}
    try:
        if program == "docker":
            run.docker(argv, state)
            out = None
        else:
            call = parse(argv, flag_table(), state)
            entry["command"] = call.command
            if call.command not in ("services list", "services enable", "projects describe") and \
                    not call.command.startswith("projects "):
                require_api(call)
            out = handler_for(call.command)(call)
            if out is not None:
                sys.stdout.write(out if isinstance(out, str) else render(out, call))
    except Refused as refused:
        entry["ok"] = False
        log(entry)
        command = entry.get("command", " ".join(argv[:3]))
        sys.stderr.write(f"ERROR: ({program}.{command.replace(' ', '.')}) {refused}\n")
        return refused.code
    save_state(state)
    entry["ok"] = True
    log(entry)
    return 0

def refresh_flags() -> None:
    """Rewrite gcloud_flags.json from the installed SDK's ``--help`` of each modelled command."""
    table = {}
    for command in sorted(json.loads(FLAG_TABLE.read_text())):
        if command.startswith("_"):
            continue
        text = subprocess.run(["gcloud", *command.split(), "--help"], capture_output=True, text=True,
                              env={**os.environ, "PAGER": "cat"}).stdout
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        flags = set()
        for line in text.splitlines():
            if re.match(r"^\s{5,13}\[?--", line):
                for negatable, name in re.findall(r"--(\[no-\])?([a-z][a-z0-9-]*)", line):
                    flags |= {name, f"no-{name}"} if negatable else {name}
        table[command] = sorted(flags)
    version = subprocess.run(["gcloud", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    source = (f"gcloud <command> --help of {version} (regenerate: python tests/fakes/fake_gcloud.py "
              "--refresh-flags); fake_gcloud.CURRENT_REFERENCE adds what later releases accept")
    lines = [f' "_source": {json.dumps(source)}'] + [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in table.items()]
    FLAG_TABLE.write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--refresh-flags"]:
        refresh_flags()
        sys.exit(0)
    sys.exit(main(sys.argv[1:], os.environ.get("FAKE_GCLOUD_PROGRAM", "gcloud")))

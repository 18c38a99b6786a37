"""Run deploy.sh and cloudbuild.yaml's steps against the stateful fake gcloud (tests/fakes/fake_gcloud.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config import REPO_ROOT

PROJECT = "proj-1"
BUILDER = f"serviceAccount:laxai-builder@{PROJECT}.iam.gserviceaccount.com"
SECRET_VALUES = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "signing-test",
                 "LAXAI_API_TOKENS": "tok:tenant-a", "WANDB_API_KEY": "wandb-test"}
# Config values a developer's shell might hold; the tests use the file's.
CONFIG_NAMES = {"GPU_TYPE", "CPU_LIMIT", "MEMORY_LIMIT", "GPU_COUNT", "ARTIFACT_BUCKET", "FIRESTORE_LOCATION",
                "DATASET_BUCKETS", "WORKER_SCRATCH_LIMIT", "CLOUD_REGION", *SECRET_VALUES}
# Commands that create or change something (a build's redeploys aside).
CREATING = ("create", "enable", "add-iam-policy-binding", "versions add", "services update", "fields update")
INDEXES = {
    "indexes": [
        {"collectionGroup": "training_jobs", "queryScope": "COLLECTION",
         "fields": [{"fieldPath": "status", "order": "ASCENDING"}, {"fieldPath": "priority", "order": "DESCENDING"},
                    {"fieldPath": "created_at", "order": "ASCENDING"}]},
        {"collectionGroup": "training_jobs", "queryScope": "COLLECTION",
         "fields": [{"fieldPath": "tenant_id", "order": "ASCENDING"}, {"fieldPath": "tags", "arrayConfig": "CONTAINS"}]},
    ],
    "fieldOverrides": [{"collectionGroup": "training_jobs", "fieldPath": "spec", "indexes": []}],
}


@dataclass
class FakeProject:
    """A temporary directory with the fake on PATH, its state file and its call log."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def make(cls, root: Path) -> "FakeProject":
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for program in ("gcloud", "docker"):
            wrapper = bin_dir / program
            wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}" '
                               f'FAKE_GCLOUD_PROGRAM={program} exec "{sys.executable}" -m tests.fakes.fake_gcloud "$@"\n')
            wrapper.chmod(0o755)
        indexes = root / "firestore.indexes.json"
        indexes.write_text(json.dumps(INDEXES))
        clean = {k: v for k, v in os.environ.items() if k not in CONFIG_NAMES and not k.startswith("FAKE_GCLOUD")}
        env = {**clean, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GOOGLE_CLOUD_PROJECT": PROJECT,
               "FAKE_GCLOUD_PROJECT": PROJECT, "FAKE_GCLOUD_STATE": str(root / "state.json"),
               "FAKE_GCLOUD_LOG": str(root / "calls.jsonl"), "FIRESTORE_INDEXES": str(indexes),
               "INDEX_WAIT_SECONDS": "60", "INDEX_POLL_SECONDS": "0.2", **SECRET_VALUES}
        return cls(root, env)

    def clone(self, root: Path) -> "FakeProject":
        """A new project directory holding a copy of this one's state (its log starts empty)."""
        copy = FakeProject.make(root)
        copy.write_state(self.state())
        return copy

    def deploy(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(REPO_ROOT / "deploy.sh"), *args], capture_output=True, text=True,
                              env={**self.env, **env}, stdin=subprocess.DEVNULL, timeout=300)

    def gcloud(self, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["gcloud", *args], capture_output=True, text=True, input=stdin,
                              env={**self.env, **env}, timeout=60)

    def gcloud_bash(self, script: str) -> subprocess.CompletedProcess[str]:
        """A build step's script, run as Cloud Build's account (laxai-builder)."""
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                              env={**self.env, "FAKE_GCLOUD_CALLER": BUILDER})

    def state(self) -> dict[str, Any]:
        return json.loads((self.root / "state.json").read_text())

    def calls(self) -> list[dict[str, Any]]:
        path = self.root / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def write_state(self, state: dict[str, Any]) -> None:
        (self.root / "state.json").write_text(json.dumps(state))


def creating(calls: list[dict[str, Any]]) -> list[str]:
    """The commands among ``calls`` that create or change something, outside a build's own steps."""
    found = []
    for call in calls:
        command = call.get("command", "")
        if call["caller"].startswith("user:") and any(command.endswith(verb) or f" {verb} " in f" {command} "
                                                      for verb in CREATING):
            found.append(" ".join(call["argv"]))
    return found


def roles(policy: dict[str, list[str]], member: str) -> set[str]:
    return {role for role, members in policy.items() if member in members}

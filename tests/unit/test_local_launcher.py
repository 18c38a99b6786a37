"""The local launcher starts real subprocesses, in their own session, without front-end secrets."""

from __future__ import annotations

import os
import time

from orchestrator.domain.job import Job
from orchestrator.domain.spec import JobSpec
from orchestrator.launchers.local import LocalProcessLauncher, log_path


def wait_exit(launcher, execution, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = launcher.exited(execution)
        if code is not None:
            return code
        time.sleep(0.05)
    return None


def test_worker_gets_its_arguments_and_home_but_no_slack_or_api_secrets(tmp_path):
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho \"ARGS $*\"\nenv | sort\n")
    fake_python.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "SLACK_BOT_TOKEN": "xoxb-secret", "SLACK_SIGNING_SECRET": "sss",
           "LAXAI_API_TOKENS": "tok:tenant", "LAXAI_TOKEN": "tok", "WANDB_MODE": "offline"}
    launcher = LocalProcessLauncher(tmp_path / "home", python=str(fake_python), env=env)
    job = Job(tenant_id="t", spec=JobSpec(tenant_id="t"))
    execution = launcher.launch(job, 2)
    assert execution.startswith("local:")
    assert wait_exit(launcher, execution) == 0
    out = log_path(tmp_path / "home", job.task_id).read_text()
    assert f"ARGS -m worker --task-id {job.task_id} --attempt 2" in out
    assert f"LAXAI_HOME={tmp_path / 'home'}" in out and "WANDB_MODE=offline" in out
    for secret in ("xoxb-secret", "SLACK_", "LAXAI_API_TOKENS", "LAXAI_TOKEN="):
        assert secret not in out


def test_stop_kills_the_whole_process_group(tmp_path):
    sleeper = tmp_path / "python"
    sleeper.write_text("#!/bin/sh\nsleep 60 &\nwait\n")
    sleeper.chmod(0o755)
    launcher = LocalProcessLauncher(tmp_path / "home", python=str(sleeper))
    execution = launcher.launch(Job(tenant_id="t", spec=JobSpec(tenant_id="t")), 1)
    assert launcher.exited(execution) is None
    launcher.stop(execution)
    assert wait_exit(launcher, execution) is not None


def test_a_workers_output_still_reaches_its_log_after_the_service_is_killed(tmp_path):
    """The log writer is no thread of the service: kill -9 the launching process and the worker's
    later output still lands in its log (and the worker does not die of a broken pipe)."""
    import signal
    import subprocess
    import sys

    late = tmp_path / "python"
    late.write_text("#!/bin/sh\necho early\nsleep 1.5\necho late\n")
    late.chmod(0o755)
    home = tmp_path / "home"
    service = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from orchestrator.domain.job import Job; "
         "from orchestrator.domain.spec import JobSpec; from orchestrator.launchers.local import LocalProcessLauncher; "
         f"job = Job(tenant_id='t', spec=JobSpec(tenant_id='t')); "
         f"LocalProcessLauncher(Path({str(home)!r}), python={str(late)!r}).launch(job, 1); "
         "print(job.task_id, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    task_id = service.stdout.readline().strip()
    service.send_signal(signal.SIGKILL)
    service.wait()
    path = log_path(home, task_id)
    deadline = time.monotonic() + 10
    while "late" not in (path.read_text() if path.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.read_text().splitlines()[1:] == ["early", "late"]

"""Warm starts (worker/warm.py, orchestrator/launchers/warm.py): local workers forked from one
process that has done the imports, behaving as ``python -m worker`` started cold would.

Real processes throughout: the local launcher, the warm-start process, real workers training
tiny jobs in a real SQLite store. One launcher (one warm-start process) serves the module.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from orchestrator.domain.status import JobStatus
from orchestrator.launchers import memlimit
from orchestrator.launchers.local import WARM_LOG, LocalProcessLauncher, log_path
from tests.security.test_limits_memory import wait_exit as wait_launched_exit
from tests.worker.conftest import WORKER_ENV, Harness
from worker import warm
from worker.fenced import EXIT_NOT_OURS

pytestmark = pytest.mark.slow

SECRETS = {"SLACK_BOT_TOKEN": "xoxb-warm-secret", "LAXAI_API_TOKENS": "tok-warm:acme"}
TINY = {"dataset": "synthetic:8", "epochs": 1, "model_params": {"architecture": "yolov8n", "input_size": 32}}
LONG = {"dataset": "synthetic:8", "epochs": 300, "model_params": {"architecture": "yolov8n", "input_size": 32}}


def worker_env(h: Harness) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(WORKER_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(h.guard), env.get("PYTHONPATH")]))  # no network
    return {**env, **SECRETS}


@pytest.fixture(scope="module")
def warm_pair(tmp_path_factory):
    h = Harness(tmp_path_factory.mktemp("warm") / "home")
    launcher = LocalProcessLauncher(h.home, env=worker_env(h), memory_limit=2 * 2**30, warm=True)
    assert launcher.wants_preparing()
    launcher.prepare()  # as the dispatcher does when a job waits
    assert not launcher.wants_preparing()
    yield h, launcher
    launcher.close()
    h.close()


def status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split()[1]
    raise AssertionError(f"{name} not in /proc/{pid}/status")


def wait_exit(launcher: LocalProcessLauncher, execution: str, timeout: float = 240.0) -> int:
    """The launcher's exit code for ``execution`` (a training worker may need minutes)."""
    return wait_launched_exit(launcher, execution, timeout)


def wait_training(h: Harness, task_id: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if h.job(task_id).progress.epoch >= 1:
            return
        time.sleep(0.1)
    raise AssertionError(f"{task_id} did not finish an epoch in {timeout} s")


def pid_of(execution: str) -> int:
    return int(execution.split(":")[1])


def test_workers_fork_from_one_warm_process_in_their_own_session_and_cgroup_and_train(warm_pair):
    h, launcher = warm_pair
    tasks = [h.submit(**TINY) for _ in range(2)]
    executions = [launcher.launch(h.job(t), 1) for t in tasks]
    starter = launcher._warm
    assert starter is not None and starter.alive()
    for task, execution in zip(tasks, executions):
        pid = pid_of(execution)
        assert int(status_field(pid, "PPid")) == starter.process.pid  # forked, not started afresh
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid  # a hard stop signals its group only
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        assert cmdline[1:] == [b"-m", b"worker", b"--task-id", task.encode(), b"--attempt", b"1"]  # ps, pgrep -f
        if launcher.limiter.enforced:
            assert f"{memlimit.PREFIX}{task}-a1" in Path(f"/proc/{pid}/cgroup").read_text()
    for task, execution in zip(tasks, executions):
        assert wait_exit(launcher, execution) == 0
        assert h.job(task).status is JobStatus.COMPLETED
        text = log_path(h.home, task).read_text()
        assert f"-m worker --task-id {task} --attempt 1" in text  # the header names the worker's command
        assert "started on cpu" in text and "is now completed" in text
        assert "imported before worker.offline.prepare" not in text  # the warm process prepared first
        for secret in SECRETS.values():
            assert secret not in text
    # The warm-start process got the workers' environment: no front-end secrets either.
    environ = Path(f"/proc/{starter.process.pid}/environ").read_bytes()
    assert b"SLACK_" not in environ and b"LAXAI_API_TOKENS" not in environ
    assert f"LAXAI_HOME={h.home}".encode() in environ


def test_a_warm_workers_exit_code_is_its_own(warm_pair):
    h, launcher = warm_pair
    task = h.submit(**TINY)  # claimed as attempt 1: attempt 5 is not the live one
    assert wait_exit(launcher, launcher.launch(h.job(task), 5)) == EXIT_NOT_OURS
    assert h.job(task).status is JobStatus.RUNNING  # and it wrote nothing


def test_a_warm_worker_killed_or_stopped_reads_as_a_cold_one_would(warm_pair):
    h, launcher = warm_pair
    killed, stopped = h.submit(**LONG), h.submit(**LONG)
    first, second = launcher.launch(h.job(killed), 1), launcher.launch(h.job(stopped), 1)
    wait_training(h, killed)
    os.kill(pid_of(first), signal.SIGKILL)
    assert wait_exit(launcher, first, timeout=30) == -signal.SIGKILL
    wait_training(h, stopped)
    launcher.stop(second)  # the process group, as for a cold worker
    assert wait_exit(launcher, second, timeout=30) == -signal.SIGKILL
    assert launcher.out_of_memory(second) is None


def test_a_killed_warm_process_is_replaced_and_its_running_worker_carries_on(warm_pair):
    h, launcher = warm_pair
    running = h.submit(**LONG)
    execution = launcher.launch(h.job(running), 1)
    wait_training(h, running)
    old = launcher._warm
    old.process.kill()
    old.process.wait()
    try:
        epoch = h.job(running).progress.epoch
        deadline = time.monotonic() + 60
        while h.job(running).progress.epoch <= epoch:  # the orphan trains on
            assert time.monotonic() < deadline, "the worker stopped with its warm-start process"
            time.sleep(0.1)
        task = h.submit(**TINY)
        assert launcher.wants_preparing()  # the dispatcher's next pass prepares it again
        launcher.prepare()
        assert wait_exit(launcher, launcher.launch(h.job(task), 1)) == 0
        assert launcher._warm is not old and launcher._warm.alive()  # a new one
        assert h.job(task).status is JobStatus.COMPLETED
    finally:
        os.killpg(pid_of(execution), signal.SIGKILL)


def test_a_warm_process_that_cannot_start_leaves_workers_cold(tmp_path, caplog):
    h = Harness(tmp_path / "home")
    python = tmp_path / "python"  # the real interpreter, except that `-m worker.warm` fails
    python.write_text(f'#!/bin/sh\n[ "$2" = worker.warm ] && {{ echo "no warm start here" >&2; exit 3; }}\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    launcher = LocalProcessLauncher(h.home, python=str(python), env=worker_env(h), warm=True)
    try:
        with caplog.at_level(logging.INFO, logger="orchestrator.launchers.local"):
            task = h.submit(**TINY)
            launcher.prepare()
            first = launcher.launch(h.job(task), 5)
            launcher.prepare()  # given up: nothing more to do
            second = launcher.launch(h.job(task), 6)
        assert not launcher.wants_preparing()
        assert wait_exit(launcher, first) == EXIT_NOT_OURS and wait_exit(launcher, second) == EXIT_NOT_OURS
        cold = [r.getMessage() for r in caplog.records if "start cold from now" in r.getMessage()]
        assert len(cold) == 1 and "ended (exit code 3)" in cold[0]  # said once, and why
        assert "no warm start here" in log_path(h.home, WARM_LOG).read_text()
        assert launcher._warm is None
    finally:
        launcher.close()
        h.close()


def test_a_changed_worker_environment_starts_workers_cold_naming_the_variable(tmp_path, caplog):
    h = Harness(tmp_path / "home")
    env = worker_env(h)
    launcher = LocalProcessLauncher(h.home, env=env, warm=True)
    try:
        task = h.submit(**TINY)
        launcher.prepare()
        warm_child = launcher.launch(h.job(task), 5)
        assert int(status_field(pid_of(warm_child), "PPid")) == launcher._warm.process.pid
        env["WANDB_MODE"] = "disabled"  # read at import by some libraries: a warm worker could miss it
        with caplog.at_level(logging.INFO, logger="orchestrator.launchers.local"):
            cold_child = launcher.launch(h.job(task), 6)
        assert int(status_field(pid_of(cold_child), "PPid")) == os.getpid()  # started afresh
        assert any("changed since it started (WANDB_MODE)" in r.getMessage() for r in caplog.records)
        assert wait_exit(launcher, warm_child) == EXIT_NOT_OURS and wait_exit(launcher, cold_child) == EXIT_NOT_OURS
    finally:
        launcher.close()
        h.close()


def test_the_cgroup_join_fails_with_the_shims_exit_code():
    assert warm.JOIN_FAILED_EXIT == memlimit.JOIN_FAILED_EXIT


def test_an_unprepared_launcher_starts_workers_cold_at_once(tmp_path):
    """launch() never waits for the warm-start process: until prepare() it starts workers cold."""
    h = Harness(tmp_path / "home")
    launcher = LocalProcessLauncher(h.home, env=worker_env(h), warm=True)
    try:
        task = h.submit(**TINY)
        execution = launcher.launch(h.job(task), 5)
        assert int(status_field(pid_of(execution), "PPid")) == os.getpid()
        assert launcher._warm is None and launcher.wants_preparing()
        assert wait_exit(launcher, execution) == EXIT_NOT_OURS
    finally:
        launcher.close()
        h.close()

"""Local launcher: each execution is a ``python -m worker`` subprocess.

Workers run in their own session so they outlive a service restart (a restarted
service finds them still heartbeating and leaves them alone) and so a hard stop
can signal the whole process group. Output goes to ``<LAXAI_HOME>/logs/<task>.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from orchestrator.domain.job import Job
from orchestrator.launchers.base import Launcher, LaunchError


WITHHELD_FROM_WORKERS = frozenset({"LAXAI_API_TOKENS", "LAXAI_TOKEN"})


def log_path(home: Path, task_id: str) -> Path:
    return home / "logs" / f"{task_id}.log"


def _pid(execution: str) -> int | None:
    prefix, _, pid = execution.partition(":")
    return int(pid) if prefix == "local" and pid.isdigit() else None


class LocalProcessLauncher(Launcher):
    """Starts workers as child processes of the service."""

    def __init__(self, home: Path, python: str = sys.executable, env: dict[str, str] | None = None):
        self.home = home
        self.python = python
        self.env = env
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._guard = threading.Lock()

    def launch(self, job: Job, attempt: int) -> str:
        path = log_path(self.home, job.task_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Workers get no front-end secrets: they never talk to Slack or check API tokens.
        env = {k: v for k, v in (os.environ if self.env is None else self.env).items()
               if not k.startswith("SLACK_") and k not in WITHHELD_FROM_WORKERS}
        env["LAXAI_HOME"] = str(self.home)
        env.setdefault("PYTHONUNBUFFERED", "1")
        command = [self.python, "-m", "worker", "--task-id", job.task_id, "--attempt", str(attempt)]
        try:
            with open(path, "ab") as log:
                log.write(f"--- attempt {attempt}: {' '.join(command)}\n".encode())
                log.flush()
                child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        except OSError as exc:
            raise LaunchError(f"could not start the worker: {exc}") from exc
        with self._guard:
            self._children[child.pid] = child
        return f"local:{child.pid}"

    def exited(self, execution: str) -> int | None:
        pid = _pid(execution)
        if pid is None:
            return None
        with self._guard:
            child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is not None:
                with self._guard:
                    self._children.pop(pid, None)
            return code
        # Not our child (started before a service restart): ask the OS.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return -1
        except PermissionError:
            return None
        return None

    def stop(self, execution: str) -> None:
        pid = _pid(execution)
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.exited(execution)

    def reap(self) -> None:
        """Collect exited children so none linger as zombies."""
        with self._guard:
            done = [pid for pid, child in self._children.items() if child.poll() is not None]
            for pid in done:
                self._children.pop(pid, None)

    def close(self) -> None:
        self.reap()

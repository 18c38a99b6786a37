"""The launcher's side of warm starts: one ``python -m worker.warm`` process and the line to it.

worker/warm.py has the protocol and what a warm-started worker shares with a cold one. Here:
start that process, wait until it has done its imports, ask it for a worker, and read how
each worker ended. Any failure (it would not start, died, answered nonsense) raises
``WarmStartError``; the launcher then starts workers cold, as before.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_MESSAGE = 1 << 16
STOP_SECONDS = 5.0  # how long close() waits for the process to end after its socket closes
# Blank room in the process's command line, which each worker overwrites with its own
# (`python -m worker --task-id <36> --attempt N`: ~75 characters more than the interpreter's path).
TITLE_ROOM = 100


def exit_of_stranger(pid: int) -> int | None:
    """How a process that is no longer (or never was) our child ended, as far as the OS can say:
    -1 once it is gone (its exit code is lost), None while it exists or may not be asked about."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return -1
    except PermissionError:
        return None
    return None


class WarmStartError(RuntimeError):
    """The warm-start process could not give a worker."""


class WarmStart:
    """One warm-start process. Thread-safe: the dispatcher launches and reaps, the API stops."""

    def __init__(self, python: str, home: Path, env: dict[str, str], log_file: Path):
        self.env = env
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with open(log_file, "ab") as out:
                # Not a session of its own: it goes with the service (a stop of the service's group,
                # or the end of its socket); the workers it forks have their own sessions.
                self.process = subprocess.Popen(
                    [python, "-m", "worker.warm", "--home", str(home), "--control-fd", str(theirs.fileno()),
                     "--room", " " * TITLE_ROOM],
                    pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=env)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        self._exits: dict[int, int] = {}
        self._guard = threading.Lock()

    def wait_ready(self, timeout: float) -> None:
        """Block until the imports are done; WarmStartError when they fail or take longer than ``timeout``."""
        with self._guard:
            message = self._receive(timeout, "finish its imports")
            if "ready" not in message:
                raise WarmStartError(message.get("error", f"unexpected answer {message}"))

    def spawn(self, command: list[str], env: dict[str, str], out_fd: int, cgroup_procs: Path | None,
              timeout: float = 30.0) -> int:
        """A worker standing for ``command`` (``python -m worker ...``): its pid."""
        request = {"argv": command[3:], "command": command, "env": env,
                   "cgroup": str(cgroup_procs) if cgroup_procs else None}
        with self._guard:
            try:
                socket.send_fds(self._socket, [json.dumps(request).encode()], [out_fd])
            except OSError as exc:
                raise WarmStartError(f"the warm-start process is gone ({exc})") from exc
            message = self._receive(timeout, "fork a worker")
        if "pid" not in message:
            raise WarmStartError(message.get("error", f"unexpected answer {message}"))
        return int(message["pid"])

    def _receive(self, timeout: float, doing: str) -> dict[str, Any]:
        """The next answer that is not an exit report (those are kept for ``exit_code``). Holds the guard."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WarmStartError(f"the warm-start process did not {doing} within {timeout:.0f} s")
            self._socket.settimeout(left)
            try:
                data = self._socket.recv(MAX_MESSAGE)
            except TimeoutError:
                continue
            except OSError as exc:
                raise WarmStartError(f"the warm-start process is gone ({exc})") from exc
            if not data:  # its end closed: it is exiting
                try:
                    code = self.process.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    code = None
                raise WarmStartError(f"the warm-start process ended (exit code {code})")
            try:
                message = json.loads(data)
            except ValueError as exc:
                raise WarmStartError(f"the warm-start process answered nonsense ({exc})") from exc
            if "exit" in message:
                self._exits[int(message["exit"])] = int(message["code"])
            else:
                return message

    def exit_code(self, pid: int) -> int | None:
        """How worker ``pid`` ended, or None while it runs. When this process died before it could
        tell, the OS is asked: -1 once the worker is gone (its code is lost, as after a service restart)."""
        with self._guard:
            self._drain()
            if pid in self._exits:
                return self._exits.pop(pid)
        return None if self.alive() else exit_of_stranger(pid)

    def _drain(self) -> None:
        """Read the exit reports waiting on the socket. Holds the guard."""
        while True:
            try:
                self._socket.setblocking(False)  # a timeout left by _receive would make recv wait it out
                data = self._socket.recv(MAX_MESSAGE)
            except OSError:  # BlockingIOError: nothing waiting; others: the process is gone
                return
            if not data:
                return
            try:
                message = json.loads(data)
            except ValueError:
                continue
            if "exit" in message:
                self._exits[int(message["exit"])] = int(message["code"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """End the process (its workers run on) and collect it."""
        self._socket.close()
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WarmChild:
    """A warm-started worker, read like the ``Popen`` of a cold one (pid, poll)."""

    def __init__(self, starter: WarmStart, pid: int):
        self.starter, self.pid = starter, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.starter.exit_code(self.pid)
        return self.returncode

"""``python -m worker.warm --home H --control-fd N``: start local workers warm.

Most of a local worker's first seconds go to imports: torch, torch._dynamo (which torch's
optimizers import on their first step) and Ultralytics, ~5 of a tiny job's ~12 CPU-s. The
local launcher (orchestrator/launchers/local.py) keeps one of these processes per service: it
imports all that once, then forks one child per attempt, and the child becomes
``python -m worker`` in everything the launcher relies on: its own session (a hard stop
signals its group; it outlives a service restart), the job's memory cgroup joined before it
runs anything, the log pipe as stdout and stderr, stdin from /dev/null, exactly the
environment the launcher gives workers, the same arguments and the same exit code.

Protocol, over a SOCK_SEQPACKET socket pair (one JSON object per packet):

- server -> launcher: ``{"ready": true}`` once the imports are done, or ``{"error": ...}``
  and the server exits (the launcher then starts its workers cold).
- launcher -> server: ``{"argv": [...], "command": [...], "env": {...}, "cgroup": path or null}``
  (the worker's arguments, and the cold command it stands for, shown as its command line) with
  the log pipe's write end attached (SCM_RIGHTS); answered ``{"pid": N}`` once the child has its
  session and cgroup, or ``{"error": ...}``.
- server -> launcher: ``{"exit": N, "code": C}`` when child N ends; C reads like
  ``Popen.returncode`` (-9 when killed by SIGKILL).

The server ends when the launcher's end closes (the service stopped or died); the children
it forked run on, as cold-started workers do.

Fork safety: the server stays single-threaded, runs no torch operation (an OpenMP thread
pool made before a fork hangs the child's first parallel region) and never initialises
CUDA (a CUDA context does not survive a fork); ``preload`` checks the last two.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

MAX_MESSAGE = 1 << 20  # a request carries the worker's environment: a few KB
JOIN_FAILED_EXIT = 125  # as orchestrator/launchers/memlimit.py's shim; kept equal by a test


def preload(home: Path) -> None:
    """Import what every attempt needs, in the order the worker itself would."""
    # Any CUDA probe during the imports asks NVML, which leaves nothing behind that a fork breaks.
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    from worker import offline
    from worker.openmp import sleep_when_idle

    sleep_when_idle()  # before torch loads libgomp
    offline.prepare(home)  # before ultralytics is imported: it reads its switches once
    import torch
    import torch._dynamo  # noqa: F401 - the optimizer's first step imports it; ~2 CPU-s
    import torchvision  # noqa: F401 - Ultralytics imports it when training starts; ~0.4 CPU-s
    import ultralytics.models.yolo.detect  # noqa: F401 - the trainer and validator

    import worker.runner  # noqa: F401 - and with it the rest of the worker and orchestrator
    if torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised while importing; a forked worker could not use it")
    if threading.active_count() > 1:
        raise RuntimeError(f"{threading.active_count()} Python threads after the imports; forking needs one")


def send(control: socket.socket, message: dict[str, Any]) -> bool:
    """Send one message; False when the launcher is gone."""
    try:
        control.send(json.dumps(message).encode())
    except OSError:
        return False
    return True


class Server:
    """The fork loop. ``serve()`` returns None in the server when the launcher is gone, and the
    request in each child, which then runs the worker (``main``)."""

    def __init__(self, control: socket.socket):
        self.control = control
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def serve(self) -> dict[str, Any] | None:
        signal.set_wakeup_fd(self.wake_w)  # SIGCHLD wakes select
        signal.signal(signal.SIGCHLD, lambda *_: None)
        while True:
            readable, _, _ = select.select([self.control, self.wake_r], [], [])
            if self.wake_r in readable:
                while _drain(self.wake_r):
                    pass
            if not self.reap():
                return None
            if self.control in readable:
                try:
                    data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, 4)
                except OSError:
                    return None
                if not data:
                    return None  # the launcher closed its end
                request = self.fork(data, fds)
                if request is not None:
                    return request  # in the child

    def reap(self) -> bool:
        """Report every child that ended; False when the launcher is gone."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return True
            self.children.discard(pid)
            if not send(self.control, {"exit": pid, "code": os.waitstatus_to_exitcode(status)}):
                return False
        return True

    def fork(self, data: bytes, fds: list[int]) -> dict[str, Any] | None:
        """Fork a worker for one request; returns the request in the child, None in the server."""
        try:
            request = json.loads(data)
            if len(fds) != 1 or not isinstance(request.get("argv"), list) or not isinstance(request.get("env"), dict):
                raise ValueError("a request needs argv, env and one descriptor")
        except ValueError as exc:
            for fd in fds:
                os.close(fd)
            send(self.control, {"error": f"bad request: {exc}"})
            return None
        sys.stdout.flush()
        sys.stderr.flush()
        settled_r, settled_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:  # no memory or process slots: the launcher starts this one cold
            for fd in (settled_r, settled_w, fds[0]):
                os.close(fd)
            send(self.control, {"error": f"could not fork: {exc}"})
            return None
        if pid == 0:
            os.close(settled_r)
            self.become_worker(request, fds[0], settled_w)
            return request
        os.close(settled_w)
        os.close(fds[0])
        self.children.add(pid)
        # Answer once the child has its own session and cgroup (or died trying), as Popen returns
        # only after the exec: a stop right after the launch then reaches the worker's group.
        os.read(settled_r, 1)
        os.close(settled_r)
        send(self.control, {"pid": pid})
        return None

    def become_worker(self, request: dict[str, Any], out: int, settled: int) -> None:
        """In the child: what ``Popen(..., start_new_session=True)`` behind the cgroup shim gives a cold worker."""
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, as in any new process
        self.control.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if request.get("cgroup"):
            join_cgroup(request["cgroup"])
        retitle(request.get("command") or [sys.executable, "-m", "worker", *request["argv"]])
        os.close(settled)
        os.environ.clear()
        os.environ.update(request["env"])
        from worker import __main__ as entry

        sys.argv = [entry.__file__, *request["argv"]]
        reseed()


def join_cgroup(procs: str) -> None:
    """Move this process into the job's memory cgroup before it allocates anything of its own."""
    try:
        Path(procs).write_text(str(os.getpid()))
    except OSError:
        os.write(2, f"laxai: could not join the memory cgroup {procs}\n".encode())
        os._exit(JOIN_FAILED_EXIT)


def retitle(words: list[str]) -> bool:
    """Show ``words`` as this process's command line (``ps``, ``pgrep -f``, /proc/PID/cmdline): a
    warm-started worker reads as the ``python -m worker --task-id ...`` it stands for. Written over
    the arguments the warm-start process was started with (``--room`` keeps space for it), through
    /proc/self/mem; False, and the old command line stays, where that is not allowed."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49 of stat
        text = "\0".join(words).encode()[: end - start - 1]
        with open("/proc/self/mem", "r+b", buffering=0) as memory:
            memory.seek(start)
            memory.write(text.ljust(end - start, b"\0"))
    except (OSError, ValueError, IndexError):
        return False
    return True


def reseed() -> None:
    """Fresh random state, as a new process has (``random`` reseeds itself after a fork)."""
    import numpy as np
    import torch

    np.random.seed(int.from_bytes(os.urandom(4), "little"))
    torch.seed()


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.warm", description="Start local workers warm.")
    parser.add_argument("--home", required=True, type=Path, help="LAXAI_HOME of the service")
    parser.add_argument("--control-fd", required=True, type=int, help="the launcher's socket")
    parser.add_argument("--room", default="", help="blank: room for the workers' command lines (retitle)")
    args = parser.parse_args(argv)
    # It shares the service's process group: a Ctrl-C meant for `laxai serve` would only print a
    # traceback here. It ends when the service's end of the socket closes instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control = socket.socket(fileno=args.control_fd)
    try:
        preload(args.home)
    except Exception as exc:  # noqa: BLE001 - any failure: the launcher starts workers cold
        send(control, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    # The imports' objects live as long as every worker: frozen, no child's collections walk them
    # (nor copy the pages they sit in by touching them); collected first so no garbage is kept.
    gc.collect()
    gc.freeze()
    if not send(control, {"ready": True}):
        return 0
    request = Server(control).serve()
    if request is None:
        return 0
    from worker.__main__ import main as worker_main

    return worker_main(request["argv"])


if __name__ == "__main__":
    sys.exit(main())

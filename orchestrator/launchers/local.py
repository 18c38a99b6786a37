"""Local launcher: each execution is a ``python -m worker`` subprocess.

Workers run in their own session so they outlive a service restart (a restarted
service finds them still heartbeating and leaves them alone) and so a hard stop
can signal the whole process group.

Limits (see README "Security model"):

- memory: each worker runs in its own memory cgroup (``memlimit``), joined before the
  worker execs, so the kernel stops it past ``WORKER_MEMORY_LIMIT``; ``out_of_memory``
  then tells the dispatcher why the process died. Where no cgroup can be made the
  limit is not enforced, and the start-up log says so.
- log: output goes through a pipe to a small writer process (``logcap``) that appends
  to ``<LAXAI_HOME>/logs/<task>.log`` and keeps its last 10 MB.

Warm starts (``warm=True``, the ``WARM_WORKERS`` setting): ``prepare()`` (the dispatcher calls
it when a job waits, before it claims) starts one ``python -m worker.warm`` process
(orchestrator/launchers/warm.py, worker/warm.py) and waits for its imports; while it runs,
each worker is forked from it, in its own session, cgroup and log pipe as above, and starts
training seconds sooner. Otherwise (not prepared, it could not start, or the environment
workers get has changed since it did) workers start cold as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import OrderedDict
from pathlib import Path

from orchestrator.domain.job import Job
from orchestrator.launchers import logcap
from orchestrator.launchers.base import Launcher, LaunchError
from orchestrator.launchers.memlimit import JobCgroup, MemoryLimiter
from orchestrator.launchers.warm import WarmChild, WarmStart, WarmStartError, exit_of_stranger

log = logging.getLogger(__name__)

WITHHELD_FROM_WORKERS = frozenset({"LAXAI_API_TOKENS", "LAXAI_TOKEN"})
LOG_CAP_BYTES = logcap.DEFAULT_CAP
ENDED_KEPT = 1000  # exit records of finished workers kept for the dispatcher to read
WRITER_DRAIN_SECONDS = 2.0  # how long an exit waits for the log writer to write the last lines
# How long prepare() waits for the warm-start process's imports (~5 CPU-s; a busy machine
# stretches them) before it gives warm starts up.
WARM_READY_SECONDS = 120.0
WARM_LOG = "warm-start"  # its output (Ultralytics' first-run notices, errors): logs/warm-start.log


def log_path(home: Path, task_id: str) -> Path:
    return home / "logs" / f"{task_id}.log"


def _pid(execution: str) -> int | None:
    prefix, _, pid = execution.partition(":")
    return int(pid) if prefix == "local" and pid.isdigit() else None


class LocalProcessLauncher(Launcher):
    """Starts workers as child processes of the service."""

    def __init__(self, home: Path, python: str = sys.executable, env: dict[str, str] | None = None,
                 memory_limit: int | None = None, cgroup_root: Path | None = None,
                 log_cap: int = LOG_CAP_BYTES, warm: bool = False):
        self.home = home
        self.python = python
        self.env = env
        self.log_cap = log_cap
        self.limiter = MemoryLimiter(memory_limit, cgroup_root)  # `laxai serve` logs describe() at start
        self.limiter.remove_stale()  # cgroups of workers that outlived an earlier service
        self._children: dict[int, subprocess.Popen[bytes] | WarmChild] = {}
        self._writers: dict[int, subprocess.Popen[bytes]] = {}  # worker pid -> its log writer
        self._cgroups: dict[int, JobCgroup] = {}
        self._ended: OrderedDict[int, tuple[int, str | None]] = OrderedDict()  # pid -> (code, oom detail)
        self._leftover: list[JobCgroup] = []  # cgroups that could not be removed yet
        self._guard = threading.Lock()
        self.warm = warm
        self._warm: WarmStart | None = None
        self._warm_off: str | None = None  # why workers start cold for good
        self._warm_lock = threading.Lock()  # one start of the warm-start process at a time

    def _environment(self) -> dict[str, str]:
        # Workers get no front-end secrets: they never talk to Slack or check API tokens.
        env = {k: v for k, v in (os.environ if self.env is None else self.env).items()
               if not k.startswith("SLACK_") and k not in WITHHELD_FROM_WORKERS}
        env["LAXAI_HOME"] = str(self.home)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _start_writer(self, path: Path, read_fd: int) -> subprocess.Popen[bytes]:
        """The log writer: its own session, so neither a stop of the worker's group nor a
        service restart cuts the worker's output short."""
        return subprocess.Popen([sys.executable, "-I", logcap.__file__, str(path), str(self.log_cap)],
                                stdin=read_fd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env={})  # needs nothing, gets no secrets

    def launch(self, job: Job, attempt: int) -> str:
        path = log_path(self.home, job.task_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        command = [self.python, "-m", "worker", "--task-id", job.task_id, "--attempt", str(attempt)]
        if shutil.which(self.python) is None:  # behind the cgroup shim this would only be an exit code
            raise LaunchError(f"could not start the worker: {self.python} is not an executable")
        cgroup = self.limiter.create(f"{job.task_id}-a{attempt}")
        writer = None
        try:
            with open(path, "ab") as header:
                header.write(f"--- attempt {attempt}: {' '.join(command)}\n".encode())
            read_fd, write_fd = os.pipe()
            try:
                writer = self._start_writer(path, read_fd)
                child = self._start_worker(command, cgroup, write_fd)
            finally:
                os.close(read_fd)
                os.close(write_fd)
        except OSError as exc:
            if cgroup is not None:
                cgroup.remove()
            if writer is not None:
                writer.wait(timeout=WRITER_DRAIN_SECONDS)  # its pipe is closed: it ends at once
            raise LaunchError(f"could not start the worker: {exc}") from exc
        with self._guard:
            self._children[child.pid] = child
            self._writers[child.pid] = writer
            self._ended.pop(child.pid, None)  # a reused pid: forget the old process
            if cgroup is not None:
                self._cgroups[child.pid] = cgroup
        return f"local:{child.pid}"

    def _start_worker(self, command: list[str], cgroup: JobCgroup | None,
                      out_fd: int) -> subprocess.Popen[bytes] | WarmChild:
        """The worker process: forked warm when the warm-start process is ready, else ``command`` run cold."""
        env = self._environment()
        starter = self._ready_starter(env)
        if starter is not None:
            try:
                pid = starter.spawn(command, env, out_fd, cgroup.procs if cgroup else None)
                return WarmChild(starter, pid)
            except WarmStartError as exc:
                log.warning("could not start a worker warm (%s); starting it cold", exc)
        return subprocess.Popen(cgroup.wrap(command) if cgroup else command, stdout=out_fd,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)

    def wants_preparing(self) -> bool:
        """Workers start warm and the warm-start process is not running (not started yet, or died)."""
        starter = self._warm
        return self.warm and not self._warm_off and (starter is None or not starter.alive())

    def prepare(self) -> None:
        """Start the warm-start process and wait for its imports (~5 CPU-s), unless it runs already
        or workers start cold; the dispatcher calls this before it claims (Launcher.prepare)."""
        if not self.wants_preparing():
            return
        with self._warm_lock:
            starter = self._warm
            if starter is not None and not starter.alive():
                log.warning("the warm-start process ended (exit code %s); starting another",
                            starter.process.returncode)
                starter.close()
                self._warm = None
            if self._warm is None and not self._warm_off:
                self._warm = self._start_warm(self._environment())

    def _ready_starter(self, env: dict[str, str]) -> WarmStart | None:
        """The warm-start process if it is up and its workers' environment is still ``env``; None: cold."""
        starter = self._warm
        if starter is None or self._warm_off or not starter.alive():
            return None
        if starter.env != env:
            changed = sorted(k for k in set(env) | set(starter.env) if env.get(k) != starter.env.get(k))
            self._warm_off = f"the workers' environment changed since it started ({', '.join(changed)})"
            log.info("workers start cold from now: %s", self._warm_off)
            return None
        return starter

    def _start_warm(self, env: dict[str, str]) -> WarmStart | None:
        """Start the warm-start process and wait for its imports; None (and cold from now) if it fails."""
        try:
            log_path(self.home, WARM_LOG).parent.mkdir(parents=True, exist_ok=True)
            starter = WarmStart(self.python, self.home, env, log_path(self.home, WARM_LOG))
        except OSError as exc:
            self._warm_off = f"the warm-start process could not start ({exc})"
        else:
            try:
                starter.wait_ready(WARM_READY_SECONDS)
            except WarmStartError as exc:
                starter.close()
                self._warm_off = f"{exc} (see {log_path(self.home, WARM_LOG)})"
            else:
                log.info("workers start warm: forked from the warm-start process (pid %d)", starter.process.pid)
                return starter
        log.warning("workers start cold from now: %s", self._warm_off)
        return None

    def _finish(self, pid: int, code: int) -> None:
        """Record how a child ended (reading its cgroup first), then release what it held."""
        with self._guard:
            self._children.pop(pid, None)
            writer = self._writers.pop(pid, None)
            cgroup = self._cgroups.pop(pid, None)
        oom = cgroup.oom_detail() if cgroup is not None and cgroup.oom_killed(code) else None
        if oom:
            log.warning("worker %d: %s", pid, oom)
        if cgroup is not None and not cgroup.remove():
            self._leftover.append(cgroup)
        if writer is not None:
            try:
                writer.wait(timeout=WRITER_DRAIN_SECONDS)
            except subprocess.TimeoutExpired:
                pass  # a grandchild still holds the pipe; reap() collects the writer later
            else:
                writer = None
        with self._guard:
            if writer is not None:
                self._writers[-writer.pid] = writer  # orphaned writer, collected by reap()
            self._ended[pid] = (code, oom)
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)

    def exited(self, execution: str) -> int | None:
        pid = _pid(execution)
        if pid is None:
            return None
        with self._guard:
            ended = self._ended.get(pid)
            child = self._children.get(pid)
        if ended is not None:
            return ended[0]
        if child is not None:
            code = child.poll()
            if code is not None:
                self._finish(pid, code)
            return code
        return exit_of_stranger(pid)  # not our child (started before a service restart): ask the OS

    def out_of_memory(self, execution: str) -> str | None:
        """Why the kernel killed this execution for memory, or None if it did not."""
        pid = _pid(execution)
        with self._guard:
            ended = self._ended.get(pid) if pid is not None else None
        return ended[1] if ended else None

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
        """Collect exited children (and their log writers) so none linger as zombies."""
        with self._guard:
            done = [(pid, code) for pid, child in self._children.items() if (code := child.poll()) is not None]
            orphans = [pid for pid, writer in self._writers.items() if pid < 0 and writer.poll() is not None]
            for pid in orphans:
                self._writers.pop(pid, None)
        for pid, code in done:
            self._finish(pid, code)
        self._leftover = [cgroup for cgroup in self._leftover if not cgroup.remove(attempts=1)]

    def close(self) -> None:
        """Collect what ended, and end the warm-start process (running workers carry on)."""
        self.reap()
        with self._warm_lock:
            if self._warm is not None:
                self._warm.close()

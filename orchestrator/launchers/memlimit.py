"""Kernel-enforced memory limits for local workers: one memory cgroup per execution.

torch maps far more virtual memory than it touches, so an address-space rlimit
(RLIMIT_AS) would kill healthy workers; a memory cgroup limits what a worker really
uses (resident memory and page cache, no swap) and the kernel's OOM killer stops it
when it goes over. Each execution gets its own cgroup, made before the worker starts;
the worker joins it before it execs (a two-line shell shim writes its own pid to
``cgroup.procs`` and then execs the worker, so every byte it allocates is charged).

Where the cgroups go:

- cgroup v2 (``memory.max``, ``memory.swap.max=0``, ``memory.oom.group=1`` so a
  worker's data-loader children die with it): under ``WORKER_CGROUP_ROOT`` when set,
  else beside the service's own cgroup when its parent delegates the memory
  controller to us (e.g. a systemd user slice, or ``systemd-run --user -p Delegate=yes``).
- cgroup v1 (``memory.limit_in_bytes``, and ``memory.memsw.limit_in_bytes`` when swap
  accounting is on): under ``WORKER_CGROUP_ROOT``, else inside the service's own memory
  cgroup (v1 allows nesting under a cgroup that holds processes).

When none can be made (no permission, no memory controller), ``MemoryLimiter.reason``
says why, a warning is logged once, and workers run without a limit: nothing pretends.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "laxai-worker-"
JOIN_FAILED_EXIT = 125
# The shim: join the cgroup, then become the worker (same pid, so the launcher's handle stays valid).
JOIN_SHIM = ('echo $$ > "$1" || { echo "laxai: could not join the memory cgroup $1" >&2; '
             f'exit {JOIN_FAILED_EXIT}; }}; shift; exec "$@"')
STALE_SECONDS = 60.0  # an empty worker cgroup this old belongs to no starting worker


def format_bytes(value: int) -> str:
    """1073741824 -> '1Gi', 314572800 -> '300Mi' (the units people set the limit in)."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            amount = value / size
            return f"{amount:.0f}{unit}" if amount == int(amount) else f"{amount:.1f}{unit}"
    return f"{value}B"


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, options) of every cgroup mount."""
    found = []
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                found.append((parts[1], parts[2], parts[3]))
    except OSError:
        pass
    return found


def _own_paths() -> dict[str, str]:
    """Our cgroup path per hierarchy: "2" for the unified one, "memory" for v1's."""
    paths: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            number, controllers, path = line.split(":", 2)
            if number == "0" and not controllers:
                paths["2"] = path
            elif "memory" in controllers.split(","):
                paths["memory"] = path
    except (OSError, ValueError):
        pass
    return paths


def _inside(mount: str, path: str) -> Path:
    """Our cgroup's directory under a mount (the mount itself when a namespace hides the path)."""
    candidate = Path(mount) / path.lstrip("/")
    return candidate if candidate.is_dir() else Path(mount)


@dataclass(frozen=True)
class Base:
    """A cgroup directory we may create per-execution cgroups in."""

    path: Path
    version: int  # 1 or 2


def _v2_base(explicit: Path | None) -> Base | None:
    unified = next((m for m, kind, _ in _mounts() if kind == "cgroup2"), None)
    if explicit is not None:
        return Base(explicit, 2) if (explicit / "cgroup.subtree_control").exists() else None
    if unified is None:
        return None
    own = _inside(unified, _own_paths().get("2", "/"))
    # v2 forbids controllers below a cgroup that holds processes (ours does, unless it is the root).
    parent = own if own == Path(unified) else own.parent
    try:
        if "memory" in (parent / "cgroup.subtree_control").read_text().split() and os.access(parent, os.W_OK):
            return Base(parent, 2)
    except OSError:
        pass
    return None


def _v1_base(explicit: Path | None) -> Base | None:
    if explicit is not None:
        return Base(explicit, 1) if (explicit / "memory.limit_in_bytes").exists() else None
    mount = next((m for m, kind, opts in _mounts() if kind == "cgroup" and "memory" in opts.split(",")), None)
    if mount is None:
        return None
    own = _inside(mount, _own_paths().get("memory", "/"))
    return Base(own, 1) if os.access(own, os.W_OK) else None


def _enable_memory(path: Path) -> None:
    """Delegate the memory controller to ``path``'s children (v2; fine if it already is)."""
    if "memory" not in (path / "cgroup.controllers").read_text().split():
        raise OSError(errno.ENOENT, "its parent does not delegate the memory controller")
    control = path / "cgroup.subtree_control"
    if "memory" not in control.read_text().split():
        control.write_text("+memory")


class JobCgroup:
    """One execution's memory cgroup: join it, read whether the kernel killed for memory, remove it."""

    def __init__(self, path: Path, version: int, limit: int):
        self.path, self.version, self.limit = path, version, limit

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` run inside this cgroup from its first instruction."""
        return ["/bin/sh", "-c", JOIN_SHIM, "laxai-join", str(self.procs), *command]

    def _read(self, name: str) -> str:
        try:
            return (self.path / name).read_text()
        except OSError:
            return ""

    def _counter(self, name: str, key: str) -> int | None:
        for line in self._read(name).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
                return int(parts[1])
        return None

    def oom_killed(self, exit_code: int | None) -> bool:
        """Whether the kernel's OOM killer struck in this cgroup (read before ``remove``)."""
        if self.version == 2:
            return (self._counter("memory.events", "oom_kill") or 0) > 0
        kills = self._counter("memory.oom_control", "oom_kill")  # Linux 4.13+
        if kills is not None:
            return kills > 0
        failures = self._read("memory.failcnt").strip()
        return exit_code == -signal.SIGKILL and failures.isdigit() and int(failures) > 0

    def peak(self) -> int | None:
        raw = self._read("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes").strip()
        return int(raw) if raw.isdigit() else None

    def oom_detail(self) -> str:
        peak = self.peak()
        extra = f" (peak {format_bytes(peak)})" if peak else ""
        return f"worker killed by the kernel: over WORKER_MEMORY_LIMIT {format_bytes(self.limit)}{extra}"

    def remove(self, attempts: int = 20) -> bool:
        """Kill what is left inside (e.g. data-loader children) and remove the cgroup."""
        for _ in range(attempts):
            for pid in self._read("cgroup.procs").split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError, ValueError):
                    pass
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:
                time.sleep(0.05)
        log.warning("could not remove the memory cgroup %s; it is retried later", self.path)
        return False


class MemoryLimiter:
    """Makes per-execution memory cgroups, or says once why it cannot."""

    def __init__(self, limit: int | None, root: Path | None = None):
        self.limit = limit
        self.base: Base | None = None
        self.reason: str | None = None
        self._warned = False
        if limit is None:
            self.reason = "WORKER_MEMORY_LIMIT=none"
            return
        self.base = _v2_base(root) or _v1_base(root)
        problem = self._probe() if self.base is not None else "no writable cgroup with the memory controller"
        if problem:
            self.base = None
            where = f"WORKER_CGROUP_ROOT={root}: " if root else ""
            self.reason = f"{where}{problem} (run as root, or under a delegated cgroup v2 subtree)"

    def _probe(self) -> str | None:
        """Make and remove one cgroup, so the start-up line tells the truth; None when it works."""
        path = self.base.path / f"{PREFIX}probe-{os.getpid()}-{threading.get_ident()}"
        try:
            if self.base.version == 2:
                _enable_memory(self.base.path)
            path.mkdir()
            self._configure(path)
        except OSError as exc:
            return f"cannot make a memory cgroup under {self.base.path} ({exc.strerror or exc})"
        finally:
            try:
                path.rmdir()
            except OSError:
                pass
        return None

    @property
    def enforced(self) -> bool:
        return self.base is not None

    def describe(self) -> str:
        """One line for the start-up log."""
        if self.base is None:
            return f"worker memory limit NOT enforced: {self.reason}"
        return (f"worker memory limit {format_bytes(self.limit)} enforced by cgroup v{self.base.version} "
                f"under {self.base.path}")

    def remove_stale(self, min_age: float = STALE_SECONDS) -> int:
        """Remove empty worker cgroups left by a service that stopped before its workers did.
        Only older ones: a fresh empty one may be about to be joined by another instance's worker."""
        if self.base is None:
            return 0
        removed = 0
        for path in self.base.path.glob(PREFIX + "*"):
            try:
                if time.time() - path.stat().st_mtime < min_age or (path / "cgroup.procs").read_text().strip():
                    continue
                path.rmdir()
                removed += 1
            except OSError:
                continue
        return removed

    def create(self, name: str) -> JobCgroup | None:
        """A fresh cgroup for one execution, or None (warned once) when limits cannot be enforced."""
        if self.base is None:
            return None
        path = self.base.path / (PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", name))
        try:
            if path.exists():
                JobCgroup(path, self.base.version, self.limit).remove()
            path.mkdir()
            self._configure(path)
        except OSError as exc:
            if not self._warned:
                log.warning("could not make the memory cgroup %s (%s): this worker runs WITHOUT its "
                            "WORKER_MEMORY_LIMIT", path, exc)
                self._warned = True
            try:
                path.rmdir()
            except OSError:
                pass
            return None
        return JobCgroup(path, self.base.version, self.limit)

    def _configure(self, path: Path) -> None:
        limit = str(self.limit)
        if self.base.version == 2:
            (path / "memory.max").write_text(limit)
            for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                if (path / name).exists():
                    (path / name).write_text(value)
            return
        (path / "memory.limit_in_bytes").write_text(limit)
        # Without a swap limit the kernel would page the worker out instead of stopping it.
        if (path / "memory.memsw.limit_in_bytes").exists():
            (path / "memory.memsw.limit_in_bytes").write_text(limit)

"""Cap a worker's log: copy stdin to a file, keeping only the last CAP bytes.

``python -I logcap.py PATH CAP`` runs beside each local worker, reading the worker's
stdout and stderr from a pipe. It is its own process (not a thread of the service) so
a worker outlives a service restart without its writes hitting a closed pipe, and it
exits when the worker (and every child holding the pipe) has exited.

The file grows to at most CAP plus a slack of a tenth of CAP; then it is rewritten to
its last CAP bytes (from a line start, after a one-line note), so the tail a user reads
with ``laxai logs`` is always complete. A write error (disk full) drops output but keeps
draining the pipe, so the worker never blocks or breaks on its own logging.

Standard library only: it is run as a script, without the package on the path.
"""

from __future__ import annotations

import os
import sys

DEFAULT_CAP = 10 * 1024 * 1024  # keep the last 10 MB of each job's log
CHUNK = 64 * 1024
NOTE = b"--- [laxai] log capped: earlier output dropped, the last %d bytes are kept ---\n"


def slack(cap: int) -> int:
    """How far past the cap the file may grow before it is rewritten (rewrites cost cap bytes)."""
    return max(cap // 10, 4096)


def trim(path: str, cap: int) -> None:
    """Rewrite ``path`` to its last ``cap`` bytes, starting at a line, behind a note."""
    with open(path, "rb") as source:
        source.seek(0, os.SEEK_END)
        size = source.tell()
        source.seek(max(0, size - cap))
        tail = source.read()
    if size > cap:
        cut = tail.find(b"\n")
        tail = tail[cut + 1:] if 0 <= cut < len(tail) - 1 else tail
    partial = f"{path}.capping"
    try:
        with open(partial, "wb") as target:
            target.write(NOTE % cap)
            target.write(tail)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def copy(source_fd: int, path: str, cap: int) -> None:
    """Copy until end of input, trimming whenever the file passes cap + slack."""
    out = open(path, "ab", buffering=0)  # noqa: SIM115 - reopened after each trim
    size = os.fstat(out.fileno()).st_size
    try:
        while True:
            if size > cap + slack(cap):
                try:
                    out.close()
                    trim(path, cap)
                except OSError:
                    pass
                out = open(path, "ab", buffering=0)  # noqa: SIM115
                size = os.fstat(out.fileno()).st_size
            chunk = os.read(source_fd, CHUNK)
            if not chunk:
                return
            try:
                out.write(chunk)
                size += len(chunk)
            except OSError:
                pass  # disk full: drop this output, keep draining
    finally:
        out.close()


def main(argv: list[str]) -> int:
    path, cap = argv[1], int(argv[2]) if len(argv) > 2 else DEFAULT_CAP
    copy(sys.stdin.fileno(), path, cap)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

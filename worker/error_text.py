"""What a failed job shows its user: the error and the job's own output, no server paths.

``/status`` ``error`` and the Slack failure reply carry ``JobError.message`` and
``JobError.tail``. They get the exception's type and message (each exception of
a chain, without traceback frames) and the last lines the training itself
printed, with the server's absolute paths replaced: ``$LAXAI_HOME``, ``<app>``,
``<python>``, ``<tmp>``, ``~`` for the known roots, ``…/name`` for any other.
The full traceback stays in the worker's log (``laxai logs``) and the service log.
"""

from __future__ import annotations

import re
import sys
import sysconfig
import tempfile
import traceback
from pathlib import Path

from orchestrator.config import REPO_ROOT
from orchestrator.domain.job import JobError

OUTPUT_LINES = 10  # of the training's own output, before the error lines
READ_BYTES = 256 * 1024  # how much of the log's end is searched for that output
# Our own log records (worker/__main__.py's format); the user's output is everything else.
OUR_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
TRACEBACK_HEAD = re.compile(r"^(Traceback \(most recent call last\):|During handling of the above exception|"
                            r"The above exception was the direct cause)")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # Ultralytics colours its output
FRAME = re.compile(r'^\s*File "[^"]*", line \d+')
# An absolute path of two or more parts, not inside a URL or a placeholder ("gs://b/x", "$LAXAI_HOME/x").
ABS_PATH = re.compile(r"(?<![\w.~$>:/\\-])/(?:[^\s/'\"`<>|,;()\[\]{}]+/)+([^\s/'\"`<>|,;()\[\]{}]*)")


def server_roots(home: Path) -> list[tuple[str, str]]:
    """(absolute root, placeholder), longest first, so the most specific root wins."""
    roots = {str(home): "$LAXAI_HOME", str(REPO_ROOT): "<app>", tempfile.gettempdir(): "<tmp>",
             sys.prefix: "<python>", sys.base_prefix: "<python>", str(Path.home()): "~"}
    for key in ("purelib", "platlib", "stdlib", "platstdlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots[path] = "<python>"
    pairs = [(root.rstrip("/"), name) for root, name in roots.items() if root and root.rstrip("/")]
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def scrub(text: str, roots: list[tuple[str, str]]) -> str:
    """``text`` without absolute server paths (nor terminal colour codes)."""
    text = ANSI.sub("", text)
    for root, name in roots:
        text = re.sub(re.escape(root) + r"(?=/|\b|$)", lambda _: name, text)
    return ABS_PATH.sub(lambda m: "…/" + m.group(1) if m.group(1) else "…/", text)


def exception_lines(exc: BaseException) -> list[str]:
    """'Type: message' (all its lines) of each exception in the chain, oldest first; no frames."""
    chain: list[traceback.TracebackException] = []
    link: traceback.TracebackException | None = traceback.TracebackException.from_exception(exc)
    while link is not None and len(chain) < 10:
        chain.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return [line for te in reversed(chain) for part in te.format_exception_only()
            for line in part.rstrip("\n").split("\n") if line.strip() and not FRAME.match(line)]


def training_output(log_file: Path | None, limit: int = OUTPUT_LINES) -> list[str]:
    """The last lines the job itself printed (Ultralytics' output), without our log records
    and without tracebacks; [] when there is no log here (Cloud Run logs to Cloud Logging)."""
    if log_file is None or not log_file.is_file():
        return []
    for stream in (sys.stdout, sys.stderr):  # our own output may be the log: let it land first
        stream.flush()
    with open(log_file, "rb") as handle:
        handle.seek(0, 2)
        start = max(0, handle.tell() - READ_BYTES)
        handle.seek(start)
        text = handle.read().decode("utf-8", "replace")
    kept: list[str] = []
    in_traceback = False
    # From the middle of the file, the first line may be cut; splitlines() would also split at \r.
    for raw in text.split("\n")[1 if start else 0:]:
        line = raw.rsplit("\r", 1)[-1].rstrip()  # progress bars redraw with \r: their last state
        if not line.strip():
            continue
        if OUR_RECORD.match(line):  # a traceback in the log is ours too: it runs to our next record
            in_traceback = False
            continue
        if TRACEBACK_HEAD.match(line) or FRAME.match(line):
            in_traceback = True
        if not in_traceback:
            kept.append(line)
    return kept[-limit:]


def user_error_text(exc: BaseException, home: Path, log_file: Path | None,
                    tail_lines: int) -> tuple[str, list[str]]:
    """(message, tail) for a JobError: the exception, then the job's output and the chain."""
    roots = server_roots(home)
    text = " ".join(scrub(str(exc), roots).split())
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if len(message) > 300:
        message = message[:297] + "..."
    lines = training_output(log_file) + exception_lines(exc)
    tail = [scrub(line, roots) for line in lines if not FRAME.match(line)]
    return message, tail[-tail_lines:]


def scrubbed(error: JobError, home: Path) -> JobError:
    """``error`` with its message and tail scrubbed of server paths and traceback frames."""
    roots = server_roots(home)
    tail = [scrub(line, roots) for line in error.tail if not FRAME.match(line) and not TRACEBACK_HEAD.match(line)]
    return error.model_copy(update={"message": scrub(error.message, roots), "tail": tail})

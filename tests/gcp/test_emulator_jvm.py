"""The emulators' JVMs run with the light settings of tests/emulators.py (why is written there).

Found by port among the machine's processes, the JVM serving each session emulator must
show the settings took effect in its own threads: a client-compiler thread and no
optimising-compiler (C2) thread, no G1 collector threads. With the JVM's defaults
(``JAVA_TOOL_OPTIONS=''``) it has "C2 CompilerThre", "G1 Conc#0", "G1 Refine#0"...
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import emulators


def jvm_serving(host: str) -> Path:
    """The /proc directory of the java process started with ``--port=<port of host>``."""
    port = host.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"java") and f"--port={port}".encode() in args:
            return proc
    raise AssertionError(f"no java process serves port {port}")


def thread_names(proc: Path) -> set[str]:
    names = set()
    for task in (proc / "task").iterdir():
        try:
            names.add((task / "comm").read_text().strip())
        except OSError:  # a thread that ended meanwhile
            pass
    return names


@pytest.mark.parametrize("kind", [emulators.FIRESTORE, emulators.PUBSUB], ids=lambda k: k.name)
def test_the_emulator_jvm_runs_with_the_client_compiler_and_the_serial_collector(kind, request):
    jvm = jvm_serving(request.getfixturevalue(f"{kind.name}_emulator"))
    assert f"JAVA_TOOL_OPTIONS={emulators.JVM_OPTIONS}".encode() in (jvm / "environ").read_bytes().split(b"\0")
    names = thread_names(jvm)
    assert any(name.startswith("C1 Compiler") for name in names), sorted(names)
    assert not [name for name in names if name.startswith(("C2 Compiler", "G1 "))], sorted(names)

"""The emulators' JVMs run with the light settings of tests/emulators.py (why is written there).

Each test starts its own emulator with ``emulators.start``, as the session fixtures do (so it
holds when a session uses emulators someone else started), and finds its JVM in the emulator's
process group: the JVM's own threads must show the settings took effect, a client-compiler
thread and no optimising-compiler (C2) thread, no G1 collector threads. With the JVM's defaults
(``JAVA_TOOL_OPTIONS=''``) it has "C2 CompilerThre", "G1 Conc#0", "G1 Refine#0"...
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import emulators

pytestmark = pytest.mark.gcp


def jvm_of(emulator: emulators.Emulator) -> Path:
    """The /proc directory of the java process in the emulator's process group (gcloud starts it)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            group = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
        except (OSError, ValueError, IndexError):
            continue
        if group == emulator.process.pid and args and args[0].endswith(b"java"):
            return proc
    raise AssertionError(f"no java process in the {emulator.kind.name} emulator's process group")


def thread_names(proc: Path) -> set[str]:
    names = set()
    for task in (proc / "task").iterdir():
        try:
            names.add((task / "comm").read_text().strip())
        except OSError:  # a thread that ended meanwhile
            pass
    return names


@pytest.mark.parametrize("kind", [emulators.FIRESTORE, emulators.PUBSUB], ids=lambda k: k.name)
def test_the_emulator_jvm_runs_with_the_client_compiler_and_the_serial_collector(kind):
    emulator = emulators.start(kind)
    try:
        jvm = jvm_of(emulator)
        environ = (jvm / "environ").read_bytes().split(b"\0")
        assert f"JAVA_TOOL_OPTIONS={emulators.JVM_OPTIONS}".encode() in environ
        names = thread_names(jvm)
        assert any(name.startswith("C1 Compiler") for name in names), sorted(names)
        assert not [name for name in names if name.startswith(("C2 Compiler", "G1 "))], sorted(names)
    finally:
        emulator.stop()

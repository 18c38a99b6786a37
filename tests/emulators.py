"""Start and stop Google's Firestore and Pub/Sub emulators for tests.

Each runs as ``gcloud ... emulators ... start`` on a free loopback port, in its own
process group (so stopping it also stops the JVM that gcloud spawns), and counts
as ready once its HTTP port answers. A missing ``gcloud`` or emulator component
fails with a message saying what to install.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 90.0  # seconds; the JVMs start in a few seconds on an idle machine
# The emulators' JVMs run short, light loads in tests: the client compiler alone (C1) and the serial
# collector. With the JVM's defaults (C2 and G1, several background threads each) the optimising
# compiler's own work never paid back: 400 document writes, reads and queries cost the Firestore
# emulator 8.5 CPU-s against 4.8 (2000: 21.6 against 9.9, and done sooner), and it shares the 2 cores
# with the trainings under test. An operator's JAVA_TOOL_OPTIONS is kept.
JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


class EmulatorUnavailable(RuntimeError):
    """An emulator could not be started."""


@dataclass(frozen=True)
class EmulatorKind:
    name: str
    component: str  # gcloud component id
    apt_package: str  # the same, as packaged for Debian/Ubuntu
    command: tuple[str, ...]
    env_var: str


FIRESTORE = EmulatorKind("firestore", "cloud-firestore-emulator", "google-cloud-cli-firestore-emulator",
                         ("emulators", "firestore", "start"), "FIRESTORE_EMULATOR_HOST")
PUBSUB = EmulatorKind("pubsub", "pubsub-emulator", "google-cloud-cli-pubsub-emulator",
                      ("beta", "emulators", "pubsub", "start"), "PUBSUB_EMULATOR_HOST")


@dataclass
class Emulator:
    """A running emulator; ``host`` is what its *_EMULATOR_HOST variable should hold."""

    kind: EmulatorKind
    host: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        # gcloud may exit first and leave the JVM of its group behind.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log_path.unlink(missing_ok=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _install_hint(kind: EmulatorKind) -> str:
    return (f"install the gcloud component '{kind.component}' "
            f"(`gcloud components install {kind.component}`, or apt package {kind.apt_package})")


def gcloud_binary(kind: EmulatorKind) -> str:
    """The gcloud executable; fails clearly when gcloud or the component is missing."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorUnavailable(f"the {kind.name} emulator needs the Google Cloud CLI: `gcloud` is not on PATH; "
                                  f"install it, then {_install_hint(kind)}")
    platform = Path(os.path.realpath(gcloud)).parent.parent / "platform"
    component_dirs = {"cloud-firestore-emulator": "cloud-firestore-emulator", "pubsub-emulator": "pubsub-emulator"}
    if platform.is_dir() and not (platform / component_dirs[kind.component]).exists():
        raise EmulatorUnavailable(f"the {kind.name} emulator is not installed: {_install_hint(kind)}")
    return gcloud


def is_ready(host: str) -> bool:
    """Both emulators answer ``Ok`` on GET / once they serve."""
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(kind: EmulatorKind, project: str = "laxai-test", timeout: float = START_TIMEOUT) -> Emulator:
    """Start an emulator on a free port and wait until it serves."""
    gcloud = gcloud_binary(kind)
    host = f"127.0.0.1:{free_port()}"
    log_path = Path(tempfile.mkstemp(prefix=f"{kind.name}-emulator-", suffix=".log")[1])
    command = [gcloud, *kind.command, f"--host-port={host}", "--quiet"]
    if kind is PUBSUB:
        command.append(f"--project={project}")
    env = {"JAVA_TOOL_OPTIONS": JVM_OPTIONS, **os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    env.pop(kind.env_var, None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    emulator = Emulator(kind, host, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(host):
            return emulator
        if process.poll() is not None:
            tail = emulator.log_tail()
            emulator.stop()
            hint = _install_hint(kind) if "component" in tail.lower() or "not installed" in tail.lower() else ""
            raise EmulatorUnavailable(f"the {kind.name} emulator exited with {process.returncode} before serving"
                                      f"{'; ' + hint if hint else ''}. Its output:\n{tail}")
        time.sleep(0.2)
    tail = emulator.log_tail()
    emulator.stop()
    raise EmulatorUnavailable(f"the {kind.name} emulator did not serve on {host} within {timeout:.0f}s. "
                              f"Its output:\n{tail}")


def clear_firestore(host: str, project: str) -> None:
    """Delete every document in the emulator's default database for ``project``."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            raise EmulatorUnavailable(f"clearing the Firestore emulator failed: HTTP {response.status}")

"""``laxai serve`` as a subprocess for end-to-end tests, with its output kept in files."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


class ServeProcess:
    """``laxai serve`` as a subprocess, with its output in files."""

    def __init__(self, home: Path, env: dict[str, str], log_dir: Path):
        self.home, self.env, self.log_dir = home, env, log_dir
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, timeout: float = 60.0) -> None:
        self.runs += 1
        laxai = Path(sys.executable).parent / "laxai"
        with open(self.log_dir / f"serve-{self.runs}.log", "wb") as out:  # the child keeps its own copy
            self.proc = subprocess.Popen([str(laxai), "serve", "--port", str(self.port), "--log-level", "info"],
                                         stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=str(REPO))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"laxai serve exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"laxai serve did not come up:\n{self.output()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("serve-*.log")))

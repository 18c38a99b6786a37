"""Item 7: worker overhead on a GPU, with GPU utilisation (``bench/gpu_check.sh`` runs it there).

The comparison of item 4 (``bench.overhead.compare``) at a GPU size: imgsz 640,
more images, a few epochs, device 0. While it runs, ``nvidia-smi`` samples GPU
utilisation every 250 ms; each run's utilisation is the mean of the samples
inside its ``model.train(...)`` call. Pairs are added while they fit in
``--budget`` seconds (the GPU check must end within 8 minutes).

``python -m bench.gpu [--cpu] [--out DIR] [--budget S]`` runs it standalone and
prints the ratios and utilisation; ``--cpu`` runs the same code on the CPU at a
tiny size (to test the script without a GPU). In ``python -m bench`` the item
runs only where CUDA is available, and otherwise reports what it checked here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.core import Context, Measure, NotHere, Result, median
from bench.items import new_result
from bench.overhead import Comparison, Size, compare, summarize

REPO = Path(__file__).resolve().parent.parent
GPU_SIZE = Size(images=384, imgsz=640, epochs=3, batch=32, pairs=3, device="0", quiet_cores=None)
CPU_SIZE = Size(images=8, imgsz=32, epochs=1, batch=8, pairs=1, device="cpu")


class Sampler:
    """nvidia-smi's utilisation and memory, stamped with our clock as each line arrives."""

    def __init__(self, interval_ms: int = 250):
        self.samples: list[tuple[float, float, float]] = []  # (unix time, util %, memory MiB)
        self.proc = None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 f"--loop-ms={interval_ms}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                util, memory = (float(x) for x in line.strip().split(",")[:2])
            except ValueError:
                continue
            self.samples.append((time.time(), util, memory))

    def window(self, start: float, end: float) -> tuple[float | None, float | None]:
        """(mean utilisation %, peak memory MiB) of the samples in [start, end]."""
        inside = [(u, m) for t, u, m in self.samples if start <= t <= end]
        if not inside:
            return None, None
        return sum(u for u, _ in inside) / len(inside), max(m for _, m in inside)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def measure(size: Size, scratch: Path, budget: float | None = None) -> tuple[Comparison, dict]:
    """The comparison plus per-side GPU utilisation (median of the runs' means)."""
    env = {}
    try:
        import wandb  # noqa: F401 - only whether it is there
    except ImportError:
        env["WANDB_MODE"] = "disabled"  # the GPU machine's wheel set may leave W&B out
    sampler = Sampler()
    try:
        comparison = compare(size, scratch, service_env=env, budget=budget)
    finally:
        sampler.stop()
    util: dict[str, list[float]] = {"bare": [], "system": []}
    memory: dict[str, list[float]] = {"bare": [], "system": []}
    for run in comparison.runs:
        mean, peak = sampler.window(run.started, run.started + run.train_seconds)
        if mean is not None:
            util[run.side].append(mean)
            memory[run.side].append(peak)
    figures = {"util_bare": median(util["bare"]) if util["bare"] else None,
               "util_system": median(util["system"]) if util["system"] else None,
               "gpu_mem_bare": median(memory["bare"]) if memory["bare"] else None,
               "gpu_mem_system": median(memory["system"]) if memory["system"] else None,
               "samples": len(sampler.samples), "wandb": env.get("WANDB_MODE", os.environ.get("WANDB_MODE", "offline"))}
    return comparison, figures


def _shown(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.0f}{unit}"


def fill(result: Result, comparison: Comparison, figures: dict) -> None:
    summarize(comparison, result)
    result.measures += [Measure("GPU util bare", figures["util_bare"], "%", 0),
                        Measure("system", figures["util_system"], "%", 0)]
    result.details.append(f"GPU utilisation (nvidia-smi every 250 ms, mean inside each train() call, median over "
                          f"runs): bare {_shown(figures['util_bare'], '%')}, system "
                          f"{_shown(figures['util_system'], '%')}; GPU memory peak bare "
                          f"{_shown(figures['gpu_mem_bare'], ' MiB')}, system {_shown(figures['gpu_mem_system'], ' MiB')}; "
                          f"{figures['samples']} samples; W&B {figures['wandb']}")


def wheel_set() -> list[Path]:
    """The wheels in .whl/ (made by bench/gpu_wheels.sh)."""
    return sorted((REPO / ".whl").glob("*.whl"))


def python312() -> str | None:
    """A Python 3.12 here, to try the wheel set with (the GPU machine runs 3.12)."""
    candidates = [shutil.which("python3.12")] + sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.startswith("Python 3.12"):
            return candidate
    return None


# What the wheels must make importable on 3.12 without the GPU machine's own packages (torch, httpx, rich...).
IMPORT_CHECK = (
    "import pydantic, pydantic_settings, fastapi, starlette, polars; "
    "polars.DataFrame({'epoch': [1], 'loss': [0.5]}).write_csv(); "
    "from orchestrator.config import load_settings; load_settings(); "
    "from orchestrator.domain.spec import JobSpec; print(pydantic.VERSION, fastapi.__version__, polars.__version__)"
)


def check_wheels(scratch: Path) -> tuple[list[Measure], list[str]]:
    """Size of the wheel set, and whether it installs (--no-index --no-deps --target) and imports on 3.12."""
    wheels = wheel_set()
    if not wheels:
        return [], ["no .whl/ here: bench/gpu_wheels.sh downloads the wheel set the GPU machine needs"]
    mib = sum(w.stat().st_size for w in wheels) / 2**20
    measures = [Measure("wheel set", mib, "MiB", 1)]
    details = [f".whl/: {len(wheels)} wheels, {mib:.1f} MiB (a device call carries at most 64 MiB with the "
               "repository); W&B is left out for size, so the GPU run uses WANDB_MODE=disabled"]
    python = python312()
    if python is None:
        return measures, details + ["no Python 3.12 here to try the wheels with"]
    target = scratch / "site"
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                              "--target", str(target), *map(str, wheels)], capture_output=True, text=True)
    if install.returncode != 0:
        return measures, details + [f"installing them into Python 3.12 failed: {install.stderr[-300:]}"]
    env = {**os.environ, "PYTHONPATH": f"{target}:{REPO}", "LAXAI_HOME": str(scratch / "home")}
    check = subprocess.run([python, "-c", IMPORT_CHECK], cwd=REPO, env=env, capture_output=True, text=True)
    if check.returncode != 0:
        return measures, details + [f"on Python 3.12 the wheels install but imports fail: {check.stderr[-300:]}"]
    details.append(f"tried here: they install into a clean {python312_version(python)} with pip --no-index "
                   "--no-deps --target, and pydantic, pydantic-settings, fastapi, starlette, polars and our "
                   "settings and domain models import and work (torch and ultralytics cannot be tried without "
                   "the GPU machine's own packages)")
    return measures, details


def python312_version(python: str) -> str:
    return subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip()


def run(ctx: Context) -> Result:
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        measures, details = check_wheels(ctx.scratch("gpu-wheels"))
        details.append("on a GPU machine, with .whl carried: bench/gpu_check.sh (imgsz 640, 384 images, 3 epochs, "
                       "pairs while they fit in its time budget, under 8 minutes); bench/gpu_check.sh --cpu runs "
                       "the same script on a CPU at a tiny size")
        raise NotHere("no CUDA GPU on this machine", measures, details)
    result = new_result("gpu")
    size = Size(**{**GPU_SIZE.__dict__, "pairs": 1}) if ctx.quick else GPU_SIZE
    comparison, figures = measure(size, ctx.scratch("gpu"), budget=ctx.pick(None, 360.0))
    fill(result, comparison, figures)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description="worker overhead on a GPU")
    parser.add_argument("--cpu", action="store_true", help="tiny run on the CPU (tests the script without a GPU)")
    parser.add_argument("--out", type=Path, help="directory for gpu.json and gpu.md")
    parser.add_argument("--budget", type=float, default=360.0, help="stop adding pairs after this many seconds")
    args = parser.parse_args(argv)
    size = CPU_SIZE if args.cpu else GPU_SIZE
    scratch = Path(tempfile.mkdtemp(prefix="laxai-gpu-"))
    started = time.monotonic()
    try:
        comparison, figures = measure(size, scratch, budget=args.budget)
    finally:
        from bench.service import kill_workers

        kill_workers(scratch / "system")
    result = new_result("gpu")
    fill(result, comparison, figures)
    print(f"time ratio (system/bare train() wall time, median of pairs): {result.measures[0].value:.3f}"
          f"  [target <= 1.03]")
    print(f"peak RSS ratio: {result.measures[1].value:.3f}  [target <= 1.10]")
    print(f"GPU utilisation during train(): bare {_shown(figures['util_bare'], '%')}, "
          f"system {_shown(figures['util_system'], '%')}")
    for line in result.details:
        print(" -", line)
    if result.note:
        print(" - note:", result.note)
    print(f"took {time.monotonic() - started:.0f} s")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu.json").write_text(json.dumps({"comparison": json.loads(comparison.to_json()),
                                                       "figures": figures}, indent=1))
        (args.out / "gpu.md").write_text("\n".join(f"- {line}" for line in result.details) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

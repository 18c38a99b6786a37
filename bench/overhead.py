"""Item 4: worker overhead, the same training through the whole system vs a bare ``YOLO(...).train(...)``.

One synthetic dataset is generated up front (``worker.datasets``) and both sides
train on that data.yaml with identical Ultralytics arguments (``bench.bare_train``
mirrors worker/training.py; same arch, epochs, imgsz, batch, lr, AdamW, seed,
dataloader workers, device). System runs are jobs posted to a local
``laxai serve`` and trained by its worker subprocess (store, heartbeat, progress
and upload threads, W&B as configured: offline by default); bare runs are fresh
processes of ``bench.bare_train``. Runs alternate (bare first in even pairs,
system first in odd ones) after one untimed warm-up of each. Each side reports,
measured the same way inside its own process, the wall time of the
``model.train(...)`` call and the process's peak RSS (``ru_maxrss``) when it
returned. Ratios are system / bare per pair; the item reports their medians.

``compare`` is also what the GPU check runs (``bench.gpu``), with a larger size.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.core import Context, Measure, Result, median, spread
from bench.cpuload import MachineLoad
from bench.items import new_result
from bench.service import REPO, Service, job_body, kill_workers, wait_for
from bench.worker_log import read as read_worker_log

TARGET_TIME = 1.03
TARGET_RSS = 1.10
QUIET_CORES = 0.5  # other work below this during both runs of a pair: a "quiet" pair


@dataclass
class Size:
    images: int = 8
    imgsz: int = 32
    epochs: int = 1
    batch: int = 8
    pairs: int = 1  # quiet pairs wanted (see QUIET_CORES)
    device: str = "cpu"  # or a CUDA index like "0"
    max_pairs: int = 0  # run up to this many pairs to get ``pairs`` quiet ones (0: just ``pairs``)
    # None: every pair counts as quiet (a dedicated machine, where a GPU run's dataloader worker
    # processes would themselves count as "other work")
    quiet_cores: float | None = QUIET_CORES


@dataclass
class Run:
    side: str  # "bare" or "system"
    train_seconds: float  # wall time of the train() call
    train_cpu: float  # CPU seconds of the whole process (all its threads) during train()
    peak_rss_mib: float
    started: float  # unix time train() was called
    task_id: str | None = None
    others: float | None = None  # cores used meanwhile by everything else on the machine


@dataclass
class Comparison:
    size: Size
    runs: list[Run] = field(default_factory=list)

    def side(self, name: str) -> list[Run]:
        return [r for r in self.runs if r.side == name]

    def pairs(self) -> list[tuple[Run, Run]]:
        """(bare, system) in the order they ran."""
        return list(zip(self.side("bare"), self.side("system")))

    def quiet(self) -> list[tuple[Run, Run]]:
        """The pairs during both runs of which other work used under ``size.quiet_cores`` cores."""
        limit = self.size.quiet_cores
        return [(b, s) for b, s in self.pairs() if limit is None or (_quiet(b, limit) and _quiet(s, limit))]

    def ratios(self, attr: str, pairs: list[tuple[Run, Run]] | None = None) -> list[float]:
        return [getattr(s, attr) / getattr(b, attr) for b, s in (self.pairs() if pairs is None else pairs)]

    def to_json(self) -> str:
        return json.dumps({"size": asdict(self.size), "runs": [asdict(r) for r in self.runs]}, indent=1)


def _quiet(run: Run, limit: float) -> bool:
    return run.others is not None and run.others < limit


def make_dataset(root: Path, images: int, imgsz: int) -> Path:
    """The worker's synthetic dataset, generated once under ``root``."""
    from worker.datasets import synthetic

    return synthetic(root, images, imgsz)


def bare_run(data: Path, size: Size, home: Path) -> Run:
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.bare_train", "--data", str(data), "--home", str(home),
               "--epochs", str(size.epochs), "--imgsz", str(size.imgsz), "--batch", str(size.batch),
               "--device", size.device]
    with open(home / "train.log", "wb") as log:  # its output goes to a file, as the worker's does
        done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, stderr=log, check=False)
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (home / "train.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"bare training failed ({done.returncode}): {tail}")
    figures = json.loads(lines[-1])
    return Run("bare", figures["train_seconds"], figures["train_cpu"], figures["peak_rss_mib"],
               figures["train_started"])


def system_run(service: Service, data: Path, size: Size) -> Run:
    body = job_body(epochs=size.epochs, imgsz=size.imgsz, dataset=str(data), batch=size.batch)
    with service.client() as client:
        response = client.post("/orchestrate", json=body)
        response.raise_for_status()
        task = response.json()["task_id"]
        view = wait_for(client, [task], timeout=3600)[task]
    if view["status"] != "completed":
        raise RuntimeError(f"system training {task} ended {view['status']}: {view.get('error')}")
    times = read_worker_log(service.home / "logs" / f"{task}.log")
    if times.train_seconds is None:
        raise RuntimeError(f"no training-call line in the log of {task}")
    return Run("system", times.train_seconds, times.train_cpu, times.peak_rss_mib, times.train_started, task)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def compare(size: Size, scratch: Path, service_env: dict | None = None, log=_progress,  # noqa: ANN001
            budget: float | None = None) -> Comparison:
    """Warm up both sides once, then alternating pairs until ``size.pairs`` of them were quiet (other work
    under QUIET_CORES during both runs) or ``size.max_pairs`` ran; fewer if the next pair would end past
    ``budget`` seconds from the start."""
    began = time.monotonic()
    data = make_dataset(scratch / "datasets", size.images, size.imgsz)
    # The dataset is a data.yaml path: it must lie in a data root the service gives the tenant.
    env = {"YOLO_DEVICE": size.device, "LAXAI_DATA_ROOTS": f"*={data.parent.parent.resolve()}", **(service_env or {})}
    result = Comparison(size)
    home = scratch / "system"
    try:
        with Service(home, **env) as service, MachineLoad() as load:
            log(f"overhead: warm-up (dataset {data})")
            bare_run(data, size, scratch / "bare-warmup")
            system_run(service, data, size)
            most = max(size.pairs, size.max_pairs)
            for pair in range(most):
                pair_started = time.monotonic()
                order = ("bare", "system") if pair % 2 == 0 else ("system", "bare")
                for side in order:
                    run = (bare_run(data, size, scratch / f"bare-{pair}") if side == "bare"
                           else system_run(service, data, size))
                    time.sleep(0.3)  # a load sample after the run's end
                    run.others = load.others(run.started, run.train_seconds, run.train_cpu)
                    result.runs.append(run)
                    log(f"overhead: pair {pair + 1} {side}: train() {run.train_seconds:.2f} s "
                        f"(CPU {run.train_cpu:.2f} s), peak RSS {run.peak_rss_mib:.0f} MiB, other load "
                        f"{run.others if run.others is None else round(run.others, 2)} cores")
                if len(result.quiet()) >= size.pairs or (pair + 1 >= size.pairs and not size.max_pairs):
                    break
                now = time.monotonic()
                if budget is not None and now - began + (now - pair_started) > budget:
                    log(f"overhead: stopping after {pair + 1} pairs to stay within {budget:.0f} s")
                    break
    finally:
        kill_workers(home)
    return result


def _loads(runs: list[Run]) -> str:
    return ", ".join("?" if r.others is None else f"{r.others:.2f}" for r in runs)


def summarize(comparison: Comparison, result: Result) -> None:
    """Fill a Result with the ratios, the targets' verdict and detail lines. The headline ratios are the
    medians over the quiet pairs when there are at least min(3, wanted) of them, else over all pairs."""
    size = comparison.size
    quiet = comparison.quiet()
    enough = len(quiet) >= min(3, size.pairs)
    chosen = quiet if enough else comparison.pairs()
    time_ratio = median(comparison.ratios("train_seconds", chosen))
    rss_ratio = median(comparison.ratios("peak_rss_mib", chosen))
    cpu_ratio = median(comparison.ratios("train_cpu", chosen))
    result.measures += [Measure("time ratio", time_ratio, "", 3), Measure("RSS ratio", rss_ratio, "", 3),
                        Measure("CPU-time ratio", cpu_ratio, "", 3)]
    result.met = time_ratio <= TARGET_TIME and rss_ratio <= TARGET_RSS
    bare, system = comparison.side("bare"), comparison.side("system")

    def listed(attr: str) -> str:
        return ", ".join(f"{x:.3f}" for x in comparison.ratios(attr))

    result.details += [
        f"size: yolov8n, {size.images} synthetic images, imgsz {size.imgsz}, batch {size.batch}, "
        f"{size.epochs} epochs, device {size.device}; {len(system)} alternating pairs after a warm-up of each",
        ("ratios above: medians over all pairs (a dedicated machine)" if size.quiet_cores is None else
         f"ratios above: medians over {'the ' + str(len(quiet)) + ' quiet pairs' if enough else 'all pairs'} "
         f"(quiet: other work on the machine used under {size.quiet_cores} cores during both runs of the pair; "
         f"{len(quiet)} of {len(system)} pairs were quiet)"),
        f"train() wall time: bare {spread([r.train_seconds for r in bare])} s, "
        f"system {spread([r.train_seconds for r in system])} s; ratios per pair {listed('train_seconds')}",
        f"peak RSS: bare {spread([r.peak_rss_mib for r in bare], 0)} MiB, "
        f"system {spread([r.peak_rss_mib for r in system], 0)} MiB; ratios per pair {listed('peak_rss_mib')}",
        f"process CPU time during train() (all threads): bare {spread([r.train_cpu for r in bare])} s, "
        f"system {spread([r.train_cpu for r in system])} s; ratios per pair {listed('train_cpu')}",
        "cores used by other work on the machine during each train() (from /proc/stat): bare "
        f"{_loads(bare)}; system {_loads(system)}",
        f"over all {len(system)} pairs: time ratio {median(comparison.ratios('train_seconds')):.3f}, "
        f"RSS ratio {median(comparison.ratios('peak_rss_mib')):.3f}, "
        f"CPU-time ratio {median(comparison.ratios('train_cpu')):.3f}",
    ]
    result.details.append(
        "where the worker's time goes (profiled: callbacks timed one by one, GC callbacks, per-thread CPU, "
        "py-spy, W&B offline vs disabled): its callbacks cost well under 1% of a train() call (mostly staging "
        "checkpoint copies; best.pt is now hard-linked to the staged last.pt, as Ultralytics writes both from "
        "one buffer), garbage collection takes as long as in the bare process, the heartbeat, progress and "
        "upload threads use about 1% of a core beside training, and W&B offline made no measurable "
        "difference. What remains, a few percent in some runs and about 1% in others, is CPU time of the "
        "training thread that no single part accounts for")
    per_pair = sorted(comparison.ratios("train_seconds", chosen))
    if len(per_pair) >= 4:
        low, high = per_pair[len(per_pair) // 4], per_pair[(3 * len(per_pair)) // 4]
        if low <= TARGET_TIME <= high:
            result.details.append(
                f"borderline: the time target ({TARGET_TIME}) lies inside the middle half of the per-pair time "
                f"ratios ({low:.3f}-{high:.3f}), so the verdict is within this machine's run-to-run noise and "
                "another run may come out the other way")
    missed = []
    if time_ratio > TARGET_TIME:
        missed.append(f"train() takes {time_ratio:.3f}x the bare wall time ({cpu_ratio:.3f}x in process CPU time)"
                      + ("" if enough else f", over all pairs: only {len(quiet)} were quiet, and on these shared "
                         "cores a busy neighbour slows a run by 10-60%, so compare each pair's ratio with the "
                         "other work during it") + "; see 'where the worker's time goes' above. No further cheap "
                      "fix was found beyond the staging change made; the GPU check (bench/gpu_check.sh), "
                      "where the training thread is not the bottleneck, would tell whether it matters there")
    if rss_ratio > TARGET_RSS:
        missed.append(f"peak RSS is {rss_ratio:.3f}x the bare process's: the worker also holds the "
                      "orchestrator, pydantic, the store client and W&B in memory")
    result.note = "; ".join(missed)


def run(ctx: Context) -> Result:
    result = new_result("overhead")
    size = ctx.pick(Size(images=8, imgsz=32, epochs=1, batch=8, pairs=1),
                    Size(images=128, imgsz=128, epochs=3, batch=16, pairs=8, max_pairs=16))
    scratch = ctx.scratch("overhead")
    comparison = compare(size, scratch)
    (scratch / "overhead.json").write_text(comparison.to_json())
    summarize(comparison, result)
    shutil.rmtree(scratch / "system" / "runs", ignore_errors=True)
    return result

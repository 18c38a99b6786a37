"""The estimate before launch: what a job should bill, in seconds and dollars, and how sure we are.

Pure domain code. ``estimate(...)`` returns an ``Estimate`` record (orchestrator/domain/job.py):
``seconds``, the predicted billed time of the whole job (what ``cost.billed_seconds`` should say at
the end), ``usd`` with a ``low_usd``–``high_usd`` band, its ``basis`` and how many ``samples`` it
was learned from. The service gathers the inputs (orchestrator/estimates.py).

The rule:

    seconds = per_image_epoch × images × epochs            (training)
            + per_execution × executions                   (start, imports, dataset, final uploads)
            + continuations × ½ epoch                       (the partial epoch each continuation redoes)

- ``per_image_epoch`` and ``per_execution`` come from this deployment's completed jobs with the
  same architecture, input size and billed hardware (``cost.gpu_type``), most recent first, at
  most ``MAX_SAMPLES``: each one's ``cost.training_s / (dataset_images × epochs)`` and
  ``cost.overhead_s`` per started execution. A job stored before the cost split (all three parts
  0) counts its whole ``billed_seconds`` as training and no overhead. Outliers are trimmed: with 3
  or more samples, a figure more than ``OUTLIER_FACTOR`` (2) times the median, or less than half
  of it (a machine under load, a first run that generated its synthetic dataset), is dropped, each
  figure on its own. The point estimate uses the median of what is left; the band the smallest
  and largest, widened to at least ±``max(10 %, 40 %/√n)`` so a few lucky runs never promise
  more than they can. ``basis: "history"``, ``samples``: the runs whose speed was used (n).
- ``executions`` = 1 + the planned continuations for the platform's task cap: with
  ``TASK_TIMEOUT`` T > 0 and its margin M, an execution trains for at most T − M − per_execution
  seconds, so the training takes ceil(training / that) executions. ``TASK_TIMEOUT=0``: one.
- ``images``: ``synthetic:N`` has N; another dataset the count the worker recorded for the
  tenant's last completed job on the same dataset string (``Job.dataset_images``). When it is not
  known but earlier completed runs on that dataset (same shape and hardware) are, their seconds
  per epoch are used instead (``basis: "history_dataset"``). When nothing is known, the prior
  with ``ASSUMED_IMAGES`` (1,000) images and the widest band (``basis: "guess"``).
- No similar runs: the prior below (``basis: "prior"``), with a band of ÷3 to ×3.

The prior, per architecture × hardware: ``per_image_epoch = base + (fixed + compute × FLOPs /
FLOPs(yolo11n)) × (input_size / 640)²``, and ``per_execution``:

- ``cpu``: measured on the development machine on 2026-11-30 (a 2-core x86 VM, torch 2.14.1 CPU,
  ultralytics 8.4.190): yolo11n, ``synthetic:64``, 2 epochs, batch 16, ``bench.bare_train``,
  twice each at 96 and 320 px. A test suite ran beside it (load average 5 to 6 on 2 cores), so
  wall times were 3 to 8 times the process's CPU time and varied by 50 % between repeats (320 px:
  249 and 371 s) while CPU time did not (45.9 and 45.8 s). The prior takes CPU time, as the wall
  time of a quiet machine with one core's worth of parallelism: inside ``train()``, the training
  loop's share (after its set-up, before the first batch) is 0.071 CPU-s per image-epoch at 96 px
  and 0.315 at 320 px, which fix ``base`` (0.047) and ``compute`` (1.07 at 640 px). The whole
  worker spent 42-56 s (wall) per execution outside the loop under that load (interpreter,
  imports, model build, dataset, final uploads; BENCHMARKS item 10); ``per_execution`` assumes 15 s
  on a quiet machine.
- ``nvidia-l4``: derived, not measured (no L4 here). Training costs about 3× the forward FLOPs
  per image (forward + backward); Ultralytics' docs give the forward GFLOPs at 640 px (YOLO11 n/s/m/l/x
  6.5/21.5/68.0/86.9/194.9, YOLOv8 n/s/m/l/x 8.7/28.6/78.9/165.2/257.8, docs.ultralytics.com
  models/yolo11 and models/yolov8, read 2026-11). The L4 does 121 TFLOPS dense FP16 on its tensor
  cores (NVIDIA's L4 datasheet; AMP trains in FP16); assuming 20 % of that is reached by these
  small convolutional nets, yolo11n at 640 px computes for 3 × 6.5e9 / (121e12 × 0.2) ≈ 0.8 ms per
  image (``compute``). Small models on a 4-vCPU Cloud Run instance wait on the data loader instead
  (on the 16-core H200 of BENCHMARKS.md item 7, yolov8n at 640 px took 15 ms per image-epoch, the
  GPU 6 % busy), so ``fixed`` is 30 ms at 640 px for 4 vCPUs, and ``base`` 2 ms.
  ``per_execution``: 60 s (container start with a CUDA image, imports, CUDA init, dataset copy).
  Treat it as an order of magnitude until this deployment has history.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator.domain.cost import Rates, format_usd
from orchestrator.domain.job import Estimate, Job
from orchestrator.domain.status import JobStatus

__all__ = ["Estimate", "Sample", "Cap", "Prior", "PRIORS", "estimate", "images_of", "sample_of", "trim",
           "describe"]

HISTORY, HISTORY_DATASET, PRIOR, GUESS = "history", "history_dataset", "prior", "guess"
MAX_SAMPLES = 20  # the most recent similar runs used
OUTLIER_FACTOR = 2.0  # a figure beyond this factor of the median is an outlier
MIN_TRIM = 3  # trim only from this many samples up
ASSUMED_IMAGES = 1000  # the dataset size assumed when nothing says it (basis "guess")
PRIOR_BAND = 3.0  # a prior may be off this factor either way
GUESS_BAND = 10.0  # ... and with the dataset's size unknown too
REFERENCE_SIZE = 640  # the input size the prior's figures are given at

# Forward GFLOPs at 640 px (Ultralytics docs, see the module docstring).
GFLOPS = {
    "yolo11n": 6.5, "yolo11s": 21.5, "yolo11m": 68.0, "yolo11l": 86.9, "yolo11x": 194.9,
    "yolov8n": 8.7, "yolov8s": 28.6, "yolov8m": 78.9, "yolov8l": 165.2, "yolov8x": 257.8,
}


@dataclass(frozen=True)
class Prior:
    """Seconds per image-epoch of yolo11n at 640 px, in three parts, and seconds per execution."""

    base: float  # per image whatever its size: Python, the loader's bookkeeping, the loss
    fixed: float  # grows with pixels, not with the model: decoding and augmenting images
    compute: float  # grows with pixels and with the model's FLOPs: forward and backward
    per_execution: float

    def per_image_epoch(self, architecture: str, input_size: int) -> float:
        scale = (input_size / REFERENCE_SIZE) ** 2
        flops = GFLOPS.get(architecture, GFLOPS["yolo11n"]) / GFLOPS["yolo11n"]
        return self.base + (self.fixed + self.compute * flops) * scale


PRIORS = {
    # Measured here (module docstring): 0.071 CPU-s per image-epoch at 96 px, 0.315 at 320 px.
    "cpu": Prior(base=0.047, fixed=0.0, compute=1.07, per_execution=15.0),
    # Derived from FLOPs and the data loader (module docstring).
    "nvidia-l4": Prior(base=0.002, fixed=0.030, compute=3 * GFLOPS["yolo11n"] * 1e9 / (121e12 * 0.2),
                       per_execution=60.0),
}


@dataclass(frozen=True)
class Cap:
    """The platform's cap on one execution (``TASK_TIMEOUT``, 0: none) and the margin kept before it."""

    timeout: float = 0.0
    margin: float = 0.0

    def continuations(self, training: float, per_execution: float) -> int:
        """Planned continuations for ``training`` seconds of training (0 without a cap)."""
        if self.timeout <= 0 or training <= 0:
            return 0
        window = self.timeout - self.margin - per_execution
        # A cap that leaves no room would plan forever; the worker still trains a little each time.
        window = max(window, (self.timeout - self.margin) / 2, 1.0)
        return max(0, math.ceil(training / window) - 1)


@dataclass(frozen=True)
class Sample:
    """What one completed job says about speed."""

    images: int | None  # its dataset's training images, when recorded
    epochs: int
    training: float  # seconds in the training loop, kept
    overhead: float  # seconds outside it, over all executions
    executions: int

    @property
    def per_epoch(self) -> float:
        return self.training / max(1, self.epochs)

    @property
    def per_image_epoch(self) -> float | None:
        return self.per_epoch / self.images if self.images else None

    @property
    def per_execution(self) -> float:
        return self.overhead / max(1, self.executions)


def sample_of(job: Job) -> Sample | None:
    """The figures of a completed job; None for any other, or one with no billed time."""
    if job.status is not JobStatus.COMPLETED or job.cost.billed_seconds <= 0:
        return None
    cost = job.cost
    executions = sum(1 for a in job.attempts if a.started_at is not None) or 1
    if cost.training_s + cost.overhead_s + cost.lost_s <= 0:  # stored before the cost split
        training, overhead = cost.billed_seconds, 0.0
    else:
        training, overhead = cost.training_s, cost.overhead_s
    if training <= 0:
        return None
    return Sample(job.dataset_images, job.spec.training_params.epochs, training, overhead, executions)


def trim(values: Sequence[float]) -> list[float]:
    """``values`` without outliers: beyond OUTLIER_FACTOR of the median, once there are MIN_TRIM."""
    if len(values) < MIN_TRIM:
        return list(values)
    middle = statistics.median(values)
    if middle <= 0:
        return list(values)
    return [v for v in values if middle / OUTLIER_FACTOR <= v <= middle * OUTLIER_FACTOR]


def _seconds(per_epoch: float, epochs: int, per_execution: float, cap: Cap) -> float:
    training = per_epoch * epochs
    continuations = cap.continuations(training, per_execution)
    return training + per_execution * (1 + continuations) + continuations * per_epoch / 2


def _record(seconds: float, low: float, high: float, rates: Rates, basis: str, samples: int,
            images: int | None) -> Estimate:
    seconds = round(seconds, 1)  # priced as shown
    return Estimate(seconds=seconds, usd=rates.cost(seconds), low_usd=rates.cost(low),
                    high_usd=rates.cost(high), basis=basis, samples=samples, gpu_type=rates.gpu_type,
                    images=images)


def _from_history(per_epochs: list[float], overheads: list[float], epochs: int, cap: Cap, rates: Rates,
                  basis: str, images: int | None) -> Estimate:
    """``per_epochs``: each sample's seconds per epoch for this job's dataset, newest first."""
    speeds, starts = trim(per_epochs), trim(overheads)
    seconds = _seconds(statistics.median(speeds), epochs, statistics.median(starts), cap)
    low = _seconds(min(speeds), epochs, min(starts), cap)
    high = _seconds(max(speeds), epochs, max(starts), cap)
    band = max(0.10, 0.40 / math.sqrt(len(speeds)))
    low, high = min(low, seconds * (1 - band)), max(high, seconds * (1 + band))
    return _record(seconds, low, high, rates, basis, len(speeds), images)


def _from_prior(job: Job, images: int | None, cap: Cap, rates: Rates) -> Estimate:
    # A GPU type priced later without its own prior gets the L4's: the right order of magnitude for a GPU.
    prior = PRIORS.get(rates.gpu_type, PRIORS["nvidia-l4"])
    mp = job.spec.model_params
    count = images if images else ASSUMED_IMAGES
    per_epoch = prior.per_image_epoch(mp.architecture, mp.input_size) * count
    seconds = _seconds(per_epoch, job.spec.training_params.epochs, prior.per_execution, cap)
    band = PRIOR_BAND if images else GUESS_BAND
    return _record(seconds, seconds / band, seconds * band, rates, PRIOR if images else GUESS, 0, count)


def alike(job: Job, other: Job, hardware: str) -> bool:
    """Whether ``other`` ran the same architecture and input size as ``job``, billed as ``hardware``."""
    mine, theirs = job.spec.model_params, other.spec.model_params
    return (theirs.architecture == mine.architecture and theirs.input_size == mine.input_size
            and other.cost.gpu_type == hardware)


def estimate(job: Job, images: int | None, similar: Iterable[Job], same_dataset: Iterable[Job], cap: Cap,
             rates: Rates) -> Estimate:
    """The estimate of ``job`` (the module's rule), priced at ``rates`` (the hardware it will be billed as):
    ``images`` in its dataset (None: unknown), ``similar`` completed jobs of its architecture and input
    size, ``same_dataset`` the tenant's completed jobs on its dataset string, both newest first. Jobs
    billed as other hardware, or not completed, are left out here."""
    epochs, hardware = job.spec.training_params.epochs, rates.gpu_type
    if images:
        samples = [sample_of(j) for j in similar if alike(job, j, hardware)]
        known = [s for s in samples if s is not None and s.per_image_epoch is not None][:MAX_SAMPLES]
        if not known:
            return _from_prior(job, images, cap, rates)
        return _from_history([s.per_image_epoch * images for s in known], [s.per_execution for s in known],
                             epochs, cap, rates, HISTORY, images)
    samples = [sample_of(j) for j in same_dataset if alike(job, j, hardware)]
    runs = [s for s in samples if s is not None][:MAX_SAMPLES]
    if not runs:
        return _from_prior(job, None, cap, rates)
    return _from_history([s.per_epoch for s in runs], [s.per_execution for s in runs], epochs, cap, rates,
                         HISTORY_DATASET, None)


def images_of(job: Job, same_dataset: Iterable[Job]) -> int | None:
    """The job's training images: ``synthetic:N``'s N, else the newest count recorded on the same dataset."""
    count = job.spec.synthetic_images()
    if count is not None:
        return count
    return next((j.dataset_images for j in same_dataset if j.dataset_images), None)


def about(seconds: float) -> str:
    """A predicted duration, no more precise than it is: ``40 s``, ``42 min``, ``2 h 05 min``."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def basis_words(estimate: Estimate) -> str:
    """Where the figure comes from, in words."""
    n = estimate.samples
    return {
        HISTORY: f"from {n} similar run{'s' if n != 1 else ''}",
        HISTORY_DATASET: f"from {n} earlier run{'s' if n != 1 else ''} on this dataset",
        PRIOR: "rough guess, no similar runs yet",
        GUESS: f"rough guess, no similar runs yet and the dataset's size unknown (assumed {ASSUMED_IMAGES:,} images)",
    }.get(estimate.basis, estimate.basis)


def describe(estimate: Estimate) -> str:
    """``≈ 42 min · ≈ $0.55 on nvidia-l4 · from 5 similar runs``: plain text (nothing a user typed)."""
    return (f"\u2248 {about(estimate.seconds)} \u00b7 \u2248 {format_usd(estimate.usd)} on {estimate.gpu_type}"
            f" \u00b7 {basis_words(estimate)}")

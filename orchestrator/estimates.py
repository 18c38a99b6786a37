"""The estimate before launch, service side: a job's history from the store, its hardware and prices.

``JobService.submit`` calls ``Estimator.attach(job)`` before it stores a job; the rule is the pure
domain's (orchestrator/domain/estimate.py). Here:

- **History**: ``JobStore.completed_like`` (completed jobs of the same architecture and input size,
  any tenant: speed does not depend on who asked) and ``JobStore.completed_on`` (the tenant's own
  completed jobs on the same dataset string: relative paths are per tenant, so another tenant's
  "data.yaml" is another dataset). Both are kept in memory for ``ESTIMATE_CACHE_SECONDS`` (10 s),
  so a burst of submissions (the Slack ack must stay well inside Slack's 3 s) queries the store
  once per shape; a job that completes counts in estimates at most that long after.
- **Hardware**: what the job's attempts will be billed as. The requested type (``gpu_type``, else
  ``GPU_TYPE``); but a local worker on a machine without an NVIDIA device (no ``/dev/nvidiactl``),
  or with ``YOLO_DEVICE=cpu``, trains on the CPU and is billed as ``cpu`` (worker/prepare.py), so
  that is what it is estimated and priced as. Prices come from ``attempt_rates``
  (orchestrator/recovery.py), the function that bills attempts, given such an attempt.
- **Failures**: a store that cannot answer leaves the history empty (the prior, ``basis: "prior"``);
  a bug here leaves the job without an estimate. Neither stops a submission.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.backends import Backend
from orchestrator.config import Settings
from orchestrator.domain import estimate as rule
from orchestrator.domain.cost import Rates
from orchestrator.domain.job import Attempt, Estimate, Job
from orchestrator.recovery import attempt_rates
from orchestrator.stores.base import StoreError

log = logging.getLogger(__name__)

# Jobs read per shape: the most recent similar runs on any hardware, of which MAX_SAMPLES are used.
HISTORY_READ = 3 * rule.MAX_SAMPLES
DATASET_READ = 5  # the tenant's last completed jobs on one dataset
CACHE_ENTRIES = 1024  # cached answers kept at most (then all are dropped)
NVIDIA_DEVICE = Path("/dev/nvidiactl")  # present where the NVIDIA driver is loaded


def trains_on(settings: Settings, backend_name: str, job: Job, gpu_present: Callable[[], bool]) -> str:
    """The hardware the job's attempts will be billed as (see the module)."""
    requested = job.spec.gpu_type or settings.GPU_TYPE
    if requested == "cpu":
        return "cpu"
    if backend_name == "local" and ((settings.YOLO_DEVICE or "").lower() == "cpu" or not gpu_present()):
        return "cpu"
    return requested


def priced_as(settings: Settings, job: Job, hardware: str) -> Rates:
    """What ``attempt_rates`` will bill an attempt of ``job`` that runs on ``hardware``."""
    probe = Attempt(number=1, claimed_at=job.created_at, device="cpu" if hardware == "cpu" else hardware)
    return attempt_rates(settings, job.model_copy(update={"attempts": [probe]}))[0]


class Estimator:
    """Estimates jobs from the store's history, cached briefly (see the module)."""

    def __init__(self, backend: Backend, clock: Callable[[], float] = time.monotonic,
                 gpu_present: Callable[[], bool] = NVIDIA_DEVICE.exists):
        self.backend, self.settings = backend, backend.settings
        self.clock, self.gpu_present = clock, gpu_present
        self._cache: dict[tuple[str, ...], tuple[float, list[Job]]] = {}
        self._guard = threading.Lock()
        self.queries = 0  # store queries made (tests and the bench read it)

    def attach(self, job: Job) -> Job:
        """``job`` with its estimate, and the image count of a synthetic dataset (known at submit)."""
        update: dict[str, object] = {"dataset_images": job.dataset_images or job.spec.synthetic_images()}
        try:
            update["estimate"] = self.estimate(job)
        except Exception:  # noqa: BLE001 - an estimate never stops a submission
            log.exception("could not estimate job %s; submitting it without an estimate", job.task_id)
        return job.model_copy(update=update)

    def estimate(self, job: Job) -> Estimate:
        settings, spec = self.settings, job.spec
        hardware = trains_on(settings, self.backend.name, job, self.gpu_present)
        mp = spec.model_params
        similar = self._history(("shape", mp.architecture, str(mp.input_size)),
                                lambda: self.backend.store.completed_like(mp.architecture, mp.input_size, HISTORY_READ))
        same_dataset: list[Job] = []
        if spec.synthetic_images() is None:
            same_dataset = self._history(("dataset", job.tenant_id, spec.dataset),
                                         lambda: self.backend.store.completed_on(job.tenant_id, spec.dataset,
                                                                                 DATASET_READ))
        cap = rule.Cap(settings.TASK_TIMEOUT, settings.TASK_TIMEOUT_MARGIN)
        images = rule.images_of(job, same_dataset)
        return rule.estimate(job, images, similar, same_dataset, cap, priced_as(settings, job, hardware))

    def _history(self, key: tuple[str, ...], read: Callable[[], list[Job]]) -> list[Job]:
        """The store's answer to ``read``, from the cache while it is fresh; [] when the store fails."""
        ttl, now = self.settings.ESTIMATE_CACHE_SECONDS, self.clock()
        with self._guard:
            cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            self.queries += 1
            jobs = read()
        except StoreError as exc:
            log.warning("no history for the estimate (%s): %s; using the prior", key[0], exc)
            return []
        if ttl > 0:
            with self._guard:
                if len(self._cache) >= CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = (now + ttl, jobs)
        return jobs

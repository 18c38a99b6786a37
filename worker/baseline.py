"""The baseline a completed run is compared with: the best earlier version of its model name.

Picked right after the run is registered (worker/results.py), from the registry's versions of the
name (one bounded read) and that version's job (one read, for its cost and wall time); it rides on
the completed write as ``artifacts.baseline``, so the completion reply (bot/blocks.py) needs no
further read and the job document no further write. Best effort: a failed read only leaves the
comparison out.
"""

from __future__ import annotations

import logging

from orchestrator.domain.model_versions import MAP50, Baseline, best_earlier, map_of, wall_seconds
from orchestrator.registry.base import ModelEntry, ModelRegistry
from orchestrator.stores.base import JobStore

log = logging.getLogger(__name__)

VERSIONS_READ = 200  # the newest versions of the name looked at


def baseline_of(registry: ModelRegistry, store: JobStore, entry: ModelEntry) -> Baseline | None:
    """The best version before ``entry`` by mAP50-95, with its cost and wall time; None when there is none."""
    try:
        earlier = registry.list(entry.tenant_id, entry.name, limit=VERSIONS_READ)
        picked = best_earlier(((e.version, e.task_id, e.metrics) for e in earlier), entry.version)
        if picked is None:
            return None
        version, task_id = picked
        best = next(e for e in earlier if e.version == version)
        job = store.get(task_id)
    except Exception:  # noqa: BLE001 - the comparison is a nicety; the run is registered
        log.warning("could not read the earlier versions of %s", entry.name, exc_info=True)
        return None
    known = job is not None and job.tenant_id == entry.tenant_id
    return Baseline(version=version, task_id=task_id, map50_95=map_of(best.metrics) or 0.0,
                    map50=map_of(best.metrics, MAP50),
                    cost_usd=job.cost.usd if known else None,
                    wall_seconds=wall_seconds(job.started_at or job.created_at, job.finished_at) if known else None)

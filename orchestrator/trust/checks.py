"""Submit-time checks of what a job will read: its dataset and its starting weights.

Applies the pure policy of ``roots`` and ``weights`` against the backend (the tenant's roots
and buckets from Settings, jobs from the store, models from the registry) and raises a
SpecError naming the field, so REST answers 422 and Slack an ephemeral error. The worker
checks everything again before it reads a file (worker/datasets.py, worker/checkpoints.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.domain.errors import FieldError, SpecError
from orchestrator.domain.spec import JobSpec
from orchestrator.domain.status import JobStatus
from orchestrator.trust import roots, weights

if TYPE_CHECKING:
    from orchestrator.backends import Backend

DATASET_FORMS = "must be 'synthetic', 'synthetic:N', a data.yaml path, a dataset directory or a gs:// URI"


def check_dataset(spec: JobSpec, backend: Backend) -> None:
    """Refuse a dataset outside the tenant's data roots (local) or dataset prefixes (gs://)."""
    dataset, settings, tenant = spec.dataset, backend.settings, spec.tenant_id
    if spec.synthetic_images() is not None:
        return
    if dataset.startswith("gs://"):
        if backend.name != "gcp":
            raise SpecError([FieldError("dataset", "gs:// datasets need the gcp backend; locally use "
                                        "'synthetic', a data.yaml path or a dataset directory")])
        if not roots.gs_inside(dataset, settings.dataset_prefixes(tenant)):
            raise SpecError([FieldError("dataset", roots.NOT_IN_BUCKETS)])
        return
    if "://" in dataset:
        raise SpecError([FieldError("dataset", DATASET_FORMS)])
    path = _local_file("dataset", dataset, backend, tenant)
    if path is not None and path.is_file() and path.suffix not in (".yaml", ".yml"):
        raise SpecError([FieldError("dataset", "a file dataset must be a data.yaml")])


def check_weights(spec: JobSpec, backend: Backend) -> None:
    """Refuse weights that are not one of the accepted forms, or not the tenant's own."""
    text = spec.model_params.weights
    if not text:
        return
    try:
        ref = weights.parse(text)
    except weights.WeightsError as exc:
        raise SpecError([FieldError(weights.FIELD, str(exc))]) from None
    tenant = spec.tenant_id
    if isinstance(ref, weights.RegistryWeights):
        if registry_entry(backend, tenant, ref) is None:
            raise SpecError([FieldError(weights.FIELD, f"no {weights.describe(ref)} in your model registry "
                                        "(see GET /models or `laxai models list`)")])
    elif isinstance(ref, weights.TaskWeights):
        if not task_checkpoint_ready(backend, tenant, ref):
            # One text for another tenant's job, a missing job and an unfinished one.
            raise SpecError([FieldError(weights.FIELD, f"no finished job {ref.task_id} of yours with a {ref.file} "
                                        "(task:ID takes a completed job's best.pt; task:ID:last a finished "
                                        "job's last.pt)")])
    elif isinstance(ref, weights.FileWeights):
        path = _local_file(weights.FIELD, ref.path, backend, tenant)
        if path is not None and not path.is_file():
            raise SpecError([FieldError(weights.FIELD, roots.NOT_IN_ROOTS)])


def registry_entry(backend: Backend, tenant: str, ref: weights.RegistryWeights):  # noqa: ANN201 - ModelEntry | None
    """The tenant's registry entry a registry: reference names (newest version when none is given)."""
    entries = backend.registry.list(tenant, ref.name)
    matching = [e for e in entries if e.tenant_id == tenant and e.name == ref.name
                and (ref.version is None or e.version == ref.version)]
    return max(matching, key=lambda e: e.version) if matching else None


def task_checkpoint_ready(backend: Backend, tenant: str, ref: weights.TaskWeights) -> bool:
    """Whether the tenant's own job ``ref.task_id`` is finished and holds the checkpoint."""
    job = backend.store.get(ref.task_id)
    if job is None or job.tenant_id != tenant:
        return False
    finished = job.status is JobStatus.COMPLETED if ref.file == weights.BEST else job.status.is_terminal()
    return finished and backend.artifacts.exists(ref.task_id, ref.file)


def _local_file(field: str, raw: str, backend: Backend, tenant: str):  # noqa: ANN202 - Path | None
    """The real path inside the tenant's roots (local backend); on gcp, whose workers have their own
    disks, a lexical check only (None): the worker resolves the path again before reading it."""
    tenant_roots = backend.settings.data_roots(tenant)
    if backend.name != "local":
        if not roots.inside_lexically(raw, tenant_roots):
            raise SpecError([FieldError(field, roots.NOT_IN_ROOTS)])
        return None
    try:
        return roots.resolve_inside(raw, tenant_roots)
    except roots.OutsideRoots:
        raise SpecError([FieldError(field, roots.NOT_IN_ROOTS)]) from None

"""Data roots: the local directories and gs:// prefixes one tenant's jobs may read.

Every tenant has ``$LAXAI_HOME/data/<tenant>/``; ``LAXAI_DATA_ROOTS`` adds directories and
``DATASET_BUCKETS`` gs:// prefixes, both as ``tenant-a=/srv/a,*=/srv/public`` (``*``: every
tenant). A path is inside when its real path (symlinks followed) is a root or below one. A
missing path and a path outside the roots get the same error, so the check cannot be used to
learn whether a file exists.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path

ALL_TENANTS = "*"
# One text for "outside" and "missing": no existence oracle.
NOT_IN_ROOTS = ("not found in your data roots: use a path inside LAXAI_HOME/data/<your tenant>/ "
                "(relative paths start there) or inside a root LAXAI_DATA_ROOTS gives your tenant")
NOT_IN_BUCKETS = ("not under your dataset prefixes: use gs://ARTIFACT_BUCKET/datasets/<your tenant>/... "
                  "or a prefix DATASET_BUCKETS gives your tenant")


class OutsideRoots(ValueError):
    """The path does not exist inside the tenant's roots (or does not exist at all)."""


def parse_tenant_map(text: str, variable: str) -> dict[str, tuple[str, ...]]:
    """``tenant-a=/srv/a,tenant-a=/srv/b,*=/srv/public`` -> ``{"tenant-a": (...), "*": (...)}``."""
    mapping: dict[str, list[str]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        tenant, sep, value = (piece.strip() for piece in item.partition("="))
        if not sep or not tenant or not value:
            raise ValueError(f"{variable} must look like tenant-a=VALUE,*=VALUE (got {item!r})")
        mapping.setdefault(tenant, []).append(value)
    return {tenant: tuple(values) for tenant, values in mapping.items()}


def for_tenant(mapping: Mapping[str, Sequence[str]], tenant: str) -> list[str]:
    """The tenant's own entries, then those given to every tenant."""
    return [*mapping.get(tenant, ()), *mapping.get(ALL_TENANTS, ())] if tenant != ALL_TENANTS else []


def local_roots(home: Path, tenant: str, configured: Mapping[str, Sequence[str]]) -> list[Path]:
    """The tenant's data directory first (relative paths start there), then its configured roots."""
    return [home / "data" / tenant, *(Path(root) for root in for_tenant(configured, tenant))]


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_inside(raw: str, roots: Sequence[Path]) -> Path:
    """The real path of ``raw`` when it exists inside one of ``roots``; OutsideRoots otherwise.

    Relative paths are taken from the first root (the tenant's own data directory)."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        if not roots:
            raise OutsideRoots(raw)
        path = roots[0] / path
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, unreadable, a NUL byte
        raise OutsideRoots(raw) from None
    if any(_within(real, root) for root in real_roots(roots)):
        return real
    raise OutsideRoots(raw)


def real_roots(roots: Sequence[Path]) -> list[Path]:
    """The roots that exist, with their own symlinks followed."""
    found = []
    for root in roots:
        try:
            found.append(root.resolve(strict=True))
        except (OSError, RuntimeError, ValueError):
            continue
    return found


def inside_lexically(raw: str, roots: Sequence[Path]) -> bool:
    """Whether ``raw``, normalised without touching the disk, is inside a root (for a service
    that cannot see the workers' disks: the worker resolves symlinks again before reading)."""
    path = Path(raw).expanduser()
    if not path.is_absolute():
        if not roots:
            return False
        path = roots[0] / path
    normal = Path(os.path.normpath(path))
    return any(_within(normal, Path(os.path.normpath(root))) for root in roots)


def bucket_prefixes(artifact_bucket: str | None, tenant: str, configured: Mapping[str, Sequence[str]]) -> list[str]:
    """gs:// prefixes (each ending in "/") the tenant's datasets may come from."""
    prefixes = list(for_tenant(configured, tenant))
    if not configured and artifact_bucket:
        prefixes.append(f"gs://{artifact_bucket.removeprefix('gs://').strip('/')}/datasets/{tenant}/")
    return [prefix if prefix.endswith("/") else prefix + "/" for prefix in prefixes]


def gs_inside(uri: str, prefixes: Sequence[str]) -> bool:
    """Whether a gs:// URI (without ``..``, ``.`` or empty segments) lies under one of ``prefixes``."""
    if not uri.startswith("gs://"):
        return False
    bucket, _, path = uri[len("gs://"):].partition("/")
    segments = path.rstrip("/").split("/") if path.rstrip("/") else []
    if not bucket or any(seg in ("", ".", "..") for seg in segments) or "\\" in uri:
        return False
    normal = "gs://" + posixpath.join(bucket, *segments) + "/"
    return any(normal.startswith(prefix) for prefix in prefixes)

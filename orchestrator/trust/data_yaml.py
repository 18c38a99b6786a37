"""data.yaml is ours to parse: a safe, bounded load and a sanitised copy for Ultralytics.

Ultralytics reads a data.yaml with aliases expanded (a 500-byte alias bomb becomes tens of
MB), runs its ``download:`` entry (a URL, a shell command or Python code) whenever ``val`` is
missing at the time it looks, and resolves ``train``/``val`` wherever they point. So the worker
never gives it the user's file: ``load`` refuses aliases, anchors, custom tags and documents
over 1 MiB; ``sanitise`` keeps only ``train``, ``val``, ``test``, ``names`` and ``nc``, rewrites
``path`` to the resolved dataset root and every split to an absolute path that exists inside
the allowed roots (no ``..`` or symlink escapes, not even inside the split directories), and
checks the class names. With ``val`` present and ``download`` gone, Ultralytics' own checks
(which run with autodownload on) have nothing to download or execute.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

MAX_YAML_BYTES = 1024 * 1024
MAX_CLASSES = 1000
MAX_NAME_CHARS = 100
MAX_SPLIT_ENTRIES = 100  # list entries per split
MAX_LIST_BYTES = 64 * 1024 * 1024  # a .txt image list
REQUIRED_SPLITS, OPTIONAL_SPLITS = ("train", "val"), ("test",)
IMAGES, LABELS = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"


class DataYamlError(ValueError):
    """The data.yaml cannot be used; the message names the key and what is allowed (no server paths)."""


def read(path: Path) -> dict[str, Any]:
    """Load a data.yaml file safely (see ``load``), reading at most MAX_YAML_BYTES + 1 bytes."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_YAML_BYTES + 1)
    if len(raw) > MAX_YAML_BYTES:
        raise DataYamlError(f"data.yaml is over {MAX_YAML_BYTES // 1024} KiB; a data.yaml is a few lines")
    return load(raw.decode("utf-8", "replace"))


def load(text: str) -> dict[str, Any]:
    """A mapping from YAML text, refusing aliases, anchors and anything but plain YAML types."""
    if len(text.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise DataYamlError(f"data.yaml is over {MAX_YAML_BYTES // 1024} KiB; a data.yaml is a few lines")
    try:
        # Events first: an alias is refused before anything is expanded (PyYAML builds shared
        # references, but Ultralytics' checks walk them as copies).
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise DataYamlError("data.yaml may not use YAML anchors or aliases (& and *); write values out")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise DataYamlError(f"data.yaml is not valid plain YAML{where}: "
                            f"{getattr(exc, 'problem', None) or type(exc).__name__}") from None
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise DataYamlError("data.yaml must be a mapping with keys like train, val and names")
    return data


def check_names(data: dict[str, Any]) -> list[str]:
    """The class names as a list (from ``names`` as a list or an index mapping, or from ``nc``)."""
    names, nc = data.get("names"), data.get("nc")
    if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or not 1 <= nc <= MAX_CLASSES):
        raise DataYamlError(f"nc: must be a whole number from 1 to {MAX_CLASSES}")
    if names is None:
        if nc is None:
            raise DataYamlError("names: required (a list of class names), or nc: the number of classes")
        return [f"class_{i}" for i in range(nc)]
    if isinstance(names, dict):
        if (len(names) > MAX_CLASSES or not all(isinstance(k, int) and not isinstance(k, bool) for k in names)
                or sorted(names) != list(range(len(names)))):
            raise DataYamlError(f"names: a mapping must have the keys 0, 1, 2... (at most {MAX_CLASSES})")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_CLASSES:
        raise DataYamlError(f"names: must be a list of 1 to {MAX_CLASSES} class names")
    out = []
    for name in names:
        if isinstance(name, bool) or not isinstance(name, (str, int, float)):
            raise DataYamlError("names: each class name must be short text")
        text = str(name)
        if not text.strip() or len(text) > MAX_NAME_CHARS or not text.isprintable():
            raise DataYamlError(f"names: each class name must be 1 to {MAX_NAME_CHARS} printable characters")
        out.append(text)
    if nc is not None and nc != len(out):
        raise DataYamlError(f"nc: {nc} does not match the {len(out)} names")
    return out


def sanitise(data: dict[str, Any], yaml_dir: Path, roots: Sequence[Path], *,
             foreign_absolute_path: bool = False) -> dict[str, Any]:
    """The data.yaml Ultralytics gets: resolved root, checked splits, checked names, nothing else.

    ``roots`` are the directories the dataset must stay inside (already resolved). A declared
    ``path`` is taken relative to the yaml's folder; with ``foreign_absolute_path`` (a copied
    dataset, e.g. from gs://) an absolute one names the uploader's machine and is ignored."""
    declared = data.get("path")
    if declared is not None and not isinstance(declared, str):
        raise DataYamlError("path: must be text (a folder relative to the data.yaml)")
    if declared and not (foreign_absolute_path and Path(declared).is_absolute()):
        base = _inside(yaml_dir / declared, roots, "path", declared)
        if not base.is_dir():
            raise DataYamlError("path: must be a folder")
    else:
        base = _inside(yaml_dir, roots, "path", ".")
    if "val" not in data and "validation" in data:  # Ultralytics' accepted synonym
        data = {**data, "val": data["validation"]}
    out: dict[str, Any] = {"path": str(base)}
    for key in (*REQUIRED_SPLITS, *OPTIONAL_SPLITS):
        value = data.get(key)
        if value in (None, "", []):
            if key in REQUIRED_SPLITS:
                raise DataYamlError(f"{key}: required (a folder of images, relative to the dataset root)")
            continue
        entries = value if isinstance(value, list) else [value]
        if len(entries) > MAX_SPLIT_ENTRIES or not all(isinstance(e, str) and e for e in entries):
            raise DataYamlError(f"{key}: must be a folder or a list of at most {MAX_SPLIT_ENTRIES} folders")
        resolved = [str(_split(base / entry, roots, key, entry)) for entry in entries]
        out[key] = resolved if isinstance(value, list) else resolved[0]
    names = check_names(data)
    out["names"] = {i: name for i, name in enumerate(names)}
    out["nc"] = len(names)
    return out


def dump(data: dict[str, Any]) -> str:
    """YAML text without anchors or aliases, whatever objects ``data`` shares."""

    class _Plain(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # noqa: ANN401 - PyYAML's signature
            return True

    return yaml.dump(data, Dumper=_Plain, sort_keys=False, allow_unicode=True)


def _inside(path: Path, roots: Sequence[Path], key: str, shown: str) -> Path:
    """The real path, when it exists inside the roots; one message for missing and outside."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte
        real = None
    if real is None or not any(real == root or root in real.parents for root in roots):
        raise DataYamlError(f"{key}: {shown!r} does not exist inside the dataset's data root")
    return real


def _split(path: Path, roots: Sequence[Path], key: str, shown: str) -> Path:
    real = _inside(path, roots, key, shown)
    if real.is_dir():
        _no_escaping_links(real, roots, key, shown)
        label_dir = _label_dir(real)
        if label_dir is not None and os.path.lexists(label_dir):
            _no_escaping_links(_inside(label_dir, roots, key, shown + " (its labels folder)"), roots, key, shown)
    elif real.suffix == ".txt" and real.is_file():
        _check_list(real, roots, key, shown)
    else:
        raise DataYamlError(f"{key}: {shown!r} must be a folder of images or a .txt list of images")
    return real


def _label_dir(images: Path) -> Path | None:
    """Where Ultralytics looks for the labels of images in ``images`` (last /images/ -> /labels/)."""
    text = str(images) + os.sep
    if IMAGES not in text:
        return None
    head, _, tail = text.rpartition(IMAGES)
    return Path(head + LABELS + tail)


def _no_escaping_links(directory: Path, roots: Sequence[Path], key: str, shown: str) -> None:
    """Refuse a split folder holding a symlink (at any depth) that leads outside the roots."""
    stack = [directory]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    _inside(Path(entry.path), roots, key, f"{shown} (a link inside it)")
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))


def _check_list(listing: Path, roots: Sequence[Path], key: str, shown: str) -> None:
    """A .txt image list: every line (./relative to the list, or absolute) must stay inside the roots."""
    if listing.stat().st_size > MAX_LIST_BYTES:
        raise DataYamlError(f"{key}: the image list {shown!r} is over {MAX_LIST_BYTES // 2**20} MiB")
    for line in listing.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("./"):
            target = listing.parent / line[2:]
        elif os.path.isabs(line):
            target = Path(line)
        else:  # Ultralytics would take it from its working directory
            raise DataYamlError(f"{key}: lines of {shown!r} must start with ./ or be absolute paths")
        try:
            real = target.resolve()
        except (OSError, RuntimeError, ValueError):
            real = None
        if real is None or not any(real == root or root in real.parents for root in roots):
            raise DataYamlError(f"{key}: {shown!r} lists an image outside the dataset's data root")


def write_copy(source: Path, roots: Sequence[Path], target: Path, *, foreign_absolute_path: bool = False) -> Path:
    """Read ``source`` safely, sanitise it against ``roots`` and write the copy to ``target`` (atomically)."""
    clean = sanitise(read(source), source.parent, roots, foreign_absolute_path=foreign_absolute_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_text("# Sanitised by LaxAI Train: the copy Ultralytics reads (orchestrator/trust/data_yaml.py)\n"
                       + dump(clean))
    os.replace(partial, target)
    return target

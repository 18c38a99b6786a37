"""Records the shape of every Firestore query this process sends, for the index-coverage check.

Installed by the test session in its own process (``tests/support/firestore_queries.py``)
and, through ``sitecustomize`` in this directory (on ``PYTHONPATH``), in every Python
process the tests start (``laxai serve``, workers), so queries issued anywhere are seen.
It wraps ``BaseQuery._to_protobuf``, which every query path of google-cloud-firestore
goes through (``get``/``stream``, transactions, ``count()`` and other aggregations,
``on_snapshot`` listeners, partitions), and appends one JSON line per new shape to the
file named by ``LAXAI_FIRESTORE_QUERY_LOG``: collection, filter tree, orders, kind and
the code that issued it. Standalone on purpose (no imports from the repository), and
never fails a query: a shape it cannot record is skipped.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
import threading
from contextlib import contextmanager

ENV = "LAXAI_FIRESTORE_QUERY_LOG"
TARGET = "google.cloud.firestore_v1.base_query"
_MARK = "_laxai_query_log"
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
_FIELD_OPS = {"LESS_THAN": "<", "LESS_THAN_OR_EQUAL": "<=", "GREATER_THAN": ">", "GREATER_THAN_OR_EQUAL": ">=",
              "EQUAL": "==", "NOT_EQUAL": "!=", "ARRAY_CONTAINS": "array-contains", "IN": "in",
              "ARRAY_CONTAINS_ANY": "array-contains-any", "NOT_IN": "not-in"}
_UNARY_OPS = {"IS_NAN": "is-nan", "IS_NULL": "is-null", "IS_NOT_NAN": "is-not-nan", "IS_NOT_NULL": "is-not-null"}
_KINDS = {"_prep_stream": "query", "_prep_get_partitions": "partition", "for_query": "listen"}
_seen: set[str] = set()
_lock = threading.Lock()
_listeners: list[list[dict]] = []


def shape_of(pb) -> dict:
    """The index-relevant parts of a ``StructuredQuery``."""
    source = pb.from_[0]
    orders = [[o.field.field_path, "DESCENDING" if o.direction.name == "DESCENDING" else "ASCENDING"]
              for o in pb.order_by]
    return {"collection": source.collection_id, "group": bool(source.all_descendants),
            "filter": _filter(pb.where) if "where" in pb else None, "orders": orders}


def _filter(node):
    which = type(node).pb(node).WhichOneof("filter_type")
    if which == "composite_filter":
        children = [_filter(c) for c in node.composite_filter.filters]
        return children[0] if len(children) == 1 else {node.composite_filter.op.name.lower(): children}
    if which == "field_filter":
        return [node.field_filter.field.field_path, _FIELD_OPS[node.field_filter.op.name]]
    return [node.unary_filter.field.field_path, _UNARY_OPS[node.unary_filter.op.name]]


def _site(frame) -> str:
    """Who issued the query: the first file outside the client library and this one, at its
    outermost frame (``queued``, not the helper ``_run`` that streams the results for it)."""
    while frame is not None and _library(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return ""
    path = frame.f_code.co_filename
    while frame.f_back is not None and frame.f_back.f_code.co_filename == path:
        frame = frame.f_back
    shown = os.path.relpath(path, _REPO) if path.startswith(_REPO) else path
    return f"{shown}:{frame.f_lineno} ({frame.f_code.co_name})"


def _library(path: str) -> bool:
    return "site-packages" in path or os.sep + "google" + os.sep in path or path == __file__


@contextmanager
def captured():
    """Every shape this process sends while the block runs (repeats included), as a list."""
    found: list[dict] = []
    _listeners.append(found)
    try:
        yield found
    finally:
        _listeners.remove(found)


def _record(pb, caller) -> None:
    path = os.environ.get(ENV)
    if not path and not _listeners:
        return
    shape = shape_of(pb)
    source = caller.f_code.co_filename
    shape["kind"] = ("aggregation" if source.endswith("aggregation.py") else "vector"
                     if source.endswith("vector_query.py") else _KINDS.get(caller.f_code.co_name, "query"))
    shape["site"] = _site(caller)
    line = json.dumps(shape, sort_keys=True)
    with _lock:
        for found in _listeners:
            found.append(shape)
        if not path or line in _seen:
            return
        _seen.add(line)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def patch(module) -> None:
    """Wrap ``BaseQuery._to_protobuf`` in ``module`` (google.cloud.firestore_v1.base_query), once."""
    original = module.BaseQuery._to_protobuf
    if getattr(original, _MARK, False):
        return

    def _to_protobuf(self):
        pb = original(self)
        try:
            _record(pb, sys._getframe(1))
        except Exception:  # noqa: BLE001 - recording must never change what the query does
            pass
        return pb

    setattr(_to_protobuf, _MARK, True)
    module.BaseQuery._to_protobuf = _to_protobuf


class _PatchOnImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Patches the client library when it is first imported, so processes that never
    use Firestore pay nothing."""

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        self._loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        patch(module)


def install() -> None:
    """Record from now on: patch at once when the library is loaded, else when it is imported."""
    if TARGET in sys.modules:
        patch(sys.modules[TARGET])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())

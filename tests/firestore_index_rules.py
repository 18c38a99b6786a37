"""Which Firestore indexes a query needs, and whether ``firestore.indexes.json`` declares them.

The emulator runs every query without an index; production Firestore refuses one
("The query requires an index") unless its indexes can serve it. This module is
a pure model of Firestore's (Standard edition) index selection, from Google's
documentation (index overview, index merging, the ``StructuredQuery.order_by``
reference), so tests can check recorded query shapes against the index file:

- A query's effective order is its ``order_by`` (less fields pinned by ``==``),
  then every inequality field it does not order by, by name, in the direction
  of the last order; ``__name__`` last (every index ends with it implicitly).
- Without a composite index (single-field indexes, which Firestore keeps for
  every field and map subfield unless a field override exempts it): no filter
  and no order; only equality filters (``==``, ``in``, ``is-null``), merged;
  one ``array-contains`` filter alone; one field filtered by range and/or
  ordered, alone.
- ``==`` filters with an order on other fields: composite indexes that end
  with the order; Firestore merges several, so each equality field must lead
  one of them (``(a, x DESC)`` and ``(b, x DESC)`` serve ``a == · b == · order by x``).
  The documentation promises merging for ``==`` only, so a query with an ``in``
  filter and an order needs one index holding all its equality fields.
- Anything else (equality or array-contains with a range filter or order,
  several orders, several ranges): one composite index, equality and
  array-contains fields first in any order, then the effective order, fields
  and directions exactly.
- ``OR`` queries: every disjunct must be served. Collection group queries need
  indexes of ``COLLECTION_GROUP`` scope (no single-field ones exist by default).

Where the documentation leaves room the model is stricter than Firestore (it
never reverses an index's direction), so a pass here means the query runs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ASC, DESC, CONTAINS = "ASCENDING", "DESCENDING", "CONTAINS"
COLLECTION, COLLECTION_GROUP = "COLLECTION", "COLLECTION_GROUP"
NAME = "__name__"
EQUALITY = {"==", "in", "is-null", "is-nan"}  # served like == (``in`` is a disjunction of ==)
ARRAY = {"array-contains", "array-contains-any"}
INEQUALITY = {"<", "<=", ">", ">=", "!=", "not-in", "is-not-null", "is-not-nan"}
OPERATORS = EQUALITY | ARRAY | INEQUALITY


class IndexFileError(ValueError):
    """The index file is not in the format ``firebase deploy`` / ``gcloud`` accept."""


# -- query shapes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One query as the client sent it: where, which filters (a tree), which orders.

    ``filter`` is None, ``[field, op]``, or ``{"and"|"or": [filter, ...]}``;
    ``kind`` is ``query``, ``aggregation`` or ``listen``; ``site`` names the code that issued it.
    """

    collection: str
    filter: Any = None
    orders: tuple[tuple[str, str], ...] = ()
    group: bool = False
    kind: str = "query"
    site: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Shape:
        return cls(data["collection"], _freeze(data.get("filter")), tuple(tuple(o) for o in data.get("orders", ())),
                   bool(data.get("group")), data.get("kind", "query"), data.get("site", ""))

    def to_json(self) -> dict[str, Any]:
        return {"collection": self.collection, "filter": _thaw(self.filter), "orders": [list(o) for o in self.orders],
                "group": self.group, "kind": self.kind, "site": self.site}

    def key(self) -> tuple:
        """What makes two shapes the same query for indexing (not where they came from)."""
        return (self.collection, self.group, json.dumps(_thaw(self.filter), sort_keys=True), self.orders)

    def describe(self) -> str:
        parts = [f"{'collection group' if self.group else 'collection'} {self.collection}"]
        if self.filter is not None:
            parts.append(f"where {_describe_filter(self.filter)}")
        if self.orders:
            parts.append("order by " + ", ".join(f"{f} {'DESC' if d == DESC else 'ASC'}" for f, d in self.orders))
        text = " ".join(parts)
        if self.kind != "query":
            text += f" ({self.kind})"
        return text + (f" [from {self.site}]" if self.site else "")


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        (how, children), = value.items()
        return (how, tuple(_freeze(c) for c in children))
    if isinstance(value, list):
        return tuple(value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 2 and value[0] in ("and", "or") and isinstance(value[1], tuple):
        return {value[0]: [_thaw(c) for c in value[1]]}
    if isinstance(value, tuple):
        return list(value)
    return value


def _describe_filter(node: Any) -> str:
    if node[0] in ("and", "or") and isinstance(node[1], tuple):
        return "(" + f" {node[0]} ".join(_describe_filter(c) for c in node[1]) + ")"
    return f"{node[0]} {node[1]} ·"


def conjunctions(node: Any) -> list[list[tuple[str, str]]]:
    """The filter tree in disjunctive normal form: each inner list is one AND of ``(field, op)``."""
    if node is None:
        return [[]]
    how, rest = node
    if how in ("and", "or") and isinstance(rest, tuple):
        parts = [conjunctions(c) for c in rest]
        if how == "or":
            return [conj for part in parts for conj in part]
        return [[f for conj in combo for f in conj] for combo in itertools.product(*parts)]
    if rest not in OPERATORS:
        raise ValueError(f"unknown filter operator {rest!r} on {how!r}")
    return [[(how, rest)]]


# -- what a query needs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """One conjunction of a query, normalized: the fields an index must hold."""

    equalities: frozenset[str]
    arrays: frozenset[str]
    orders: tuple[tuple[str, str], ...]  # the effective order, without the implicit trailing __name__
    inequality: bool
    mergeable: bool = True  # every equality is ==: composites ending with the order may be merged

    def suggestion(self) -> list[dict[str, str]]:
        """The composite index that serves this need on its own, in the index file's format."""
        return ([{"fieldPath": f, "order": ASC} for f in sorted(self.equalities)]
                + [{"fieldPath": f, "arrayConfig": CONTAINS} for f in sorted(self.arrays)]
                + [{"fieldPath": f, "order": d} for f, d in self.orders])


def need_of(filters: Iterable[tuple[str, str]], orders: Iterable[tuple[str, str]]) -> Need:
    """Normalize one AND of filters plus the query's orders the way Firestore does."""
    filters = list(filters)
    pinned = {f for f, op in filters if op in ("==", "is-null", "is-nan")}  # one value: ordering by it is moot
    explicit = [(f, d) for f, d in orders if f not in pinned]
    ordered = {f for f, _ in explicit}
    equalities = {f for f, op in filters if op in EQUALITY and f not in ordered}
    arrays = {f for f, op in filters if op in ARRAY}
    ranges = sorted({f for f, op in filters if op in INEQUALITY} - ordered)
    direction = explicit[-1][1] if explicit else ASC
    effective = explicit + [(f, direction) for f in ranges]
    if effective and effective[-1][0] == NAME and effective[-1][1] == (effective[-2][1] if len(effective) > 1 else ASC):
        effective = effective[:-1]  # indexes end with __name__ in their last field's direction anyway
    return Need(frozenset(equalities), frozenset(arrays), tuple(effective), any(op in INEQUALITY for _, op in filters),
                not any(op == "in" for _, op in filters))


# -- the index file ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Composite:
    group: str
    scope: str
    fields: tuple[tuple[str, str], ...]  # (fieldPath, ASCENDING | DESCENDING | CONTAINS)


@dataclass
class IndexFile:
    """``firestore.indexes.json``: composite indexes and single-field overrides."""

    composites: list[Composite] = field(default_factory=list)
    # (collectionGroup, fieldPath) -> {(mode, scope)} the field's single-field indexes (empty: exempt)
    overrides: dict[tuple[str, str], frozenset[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str) -> IndexFile:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise IndexFileError(f"{path}: {exc}") from exc
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, where: str = "firestore.indexes.json") -> IndexFile:
        _keys(data, where, {"indexes"}, {"fieldOverrides"})
        made = cls()
        for n, index in enumerate(_list(data["indexes"], f"{where}: indexes")):
            made.composites.append(_composite(index, f"{where}: indexes[{n}]"))
        if len(set(made.composites)) != len(made.composites):
            raise IndexFileError(f"{where}: the same composite index is declared twice")
        for n, override in enumerate(_list(data.get("fieldOverrides", []), f"{where}: fieldOverrides")):
            at = f"{where}: fieldOverrides[{n}]"
            _keys(override, at, {"collectionGroup", "fieldPath"}, {"indexes", "ttl"})
            if "indexes" in override:
                modes = frozenset(_mode(i, f"{at}.indexes[{m}]") for m, i in
                                  enumerate(_list(override["indexes"], f"{at}.indexes")))
                made.overrides[(_text(override, "collectionGroup", at), _text(override, "fieldPath", at))] = modes
        return made

    def single_field(self, group: str, path: str, mode: str, scope: str) -> bool:
        """Whether Firestore keeps the single-field index ``(path, mode)`` for the collection group."""
        if path == NAME:
            return True
        override = self._override(group, path)
        if override is None:
            return scope == COLLECTION  # automatic indexing: both orders and array-contains, collection scope
        return (mode, scope) in override

    def exempt(self, group: str, path: str) -> bool:
        override = self._override(group, path)
        return override is not None and not override

    def _override(self, group: str, path: str) -> frozenset[tuple[str, str]] | None:
        parts = path.split(".")
        for n in range(len(parts), 0, -1):  # a map's override applies to its subfields
            found = self.overrides.get((group, ".".join(parts[:n])))
            if found is not None:
                return found
        return self.overrides.get((group, "*"))

    def without(self, group: str, fields: Iterable[tuple[str, str]]) -> IndexFile:
        """A copy lacking one composite index (for showing the check fails without it)."""
        fields = tuple(tuple(f) for f in fields)
        kept = [c for c in self.composites if not (c.group == group and c.fields == fields)]
        if len(kept) == len(self.composites):
            raise KeyError(f"no composite index {fields} on {group}")
        return IndexFile(kept, dict(self.overrides))


def _keys(data: Any, where: str, required: set[str], optional: set[str]) -> None:
    if not isinstance(data, dict):
        raise IndexFileError(f"{where}: must be an object")
    missing, unknown = required - data.keys(), data.keys() - required - optional
    if missing or unknown:
        raise IndexFileError(f"{where}: " + "; ".join(
            ([f"missing {sorted(missing)}"] if missing else []) + ([f"unknown {sorted(unknown)}"] if unknown else [])))


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise IndexFileError(f"{where}: must be a list")
    return value


def _text(data: dict, key: str, where: str) -> str:
    if not isinstance(data[key], str) or not data[key]:
        raise IndexFileError(f"{where}.{key}: must be a non-empty string")
    return data[key]


def _scope(data: dict, where: str) -> str:
    scope = data.get("queryScope", COLLECTION)
    if scope not in (COLLECTION, COLLECTION_GROUP):
        raise IndexFileError(f"{where}.queryScope: {scope!r}; allowed: {COLLECTION}, {COLLECTION_GROUP}")
    return scope


def _field_mode(data: dict, where: str) -> str:
    if ("order" in data) == ("arrayConfig" in data):
        raise IndexFileError(f"{where}: give exactly one of order, arrayConfig")
    if "order" in data and data["order"] not in (ASC, DESC):
        raise IndexFileError(f"{where}.order: {data['order']!r}; allowed: {ASC}, {DESC}")
    if "arrayConfig" in data and data["arrayConfig"] != CONTAINS:
        raise IndexFileError(f"{where}.arrayConfig: {data['arrayConfig']!r}; allowed: {CONTAINS}")
    return data.get("order") or CONTAINS


def _mode(data: Any, where: str) -> tuple[str, str]:
    _keys(data, where, set(), {"order", "arrayConfig", "queryScope"})
    return _field_mode(data, where), _scope(data, where)


def _composite(data: Any, where: str) -> Composite:
    _keys(data, where, {"collectionGroup", "fields"}, {"queryScope"})
    fields = []
    for n, entry in enumerate(_list(data["fields"], f"{where}.fields")):
        _keys(entry, f"{where}.fields[{n}]", {"fieldPath"}, {"order", "arrayConfig"})
        fields.append((_text(entry, "fieldPath", f"{where}.fields[{n}]"), _field_mode(entry, f"{where}.fields[{n}]")))
    if len([f for f, _ in fields if f != NAME]) < 2:
        raise IndexFileError(f"{where}.fields: a composite index needs two fields or more "
                             "(one field is a single-field index: use fieldOverrides)")
    if len({f for f, _ in fields}) != len(fields):
        raise IndexFileError(f"{where}.fields: a field appears twice")
    if fields[-1][0] == NAME and len(fields) > 1 and fields[-1][1] == fields[-2][1]:
        fields.pop()  # the implicit last field, written out
    return Composite(_text(data, "collectionGroup", where), _scope(data, where), tuple(fields))


# -- the check -----------------------------------------------------------------------------------------------------


def served(need: Need, group: str, scope: str, indexes: IndexFile) -> bool:
    """Whether Firestore can run a query with this need on the declared indexes."""
    if _single_fields(need, group, scope, indexes):
        return True
    leads = need.equalities | need.arrays
    composites = [c.fields for c in indexes.composites if c.group == group and c.scope == scope]

    def fits(fields: tuple[tuple[str, str], ...], prefix: frozenset[str]) -> bool:
        head, tail = fields[:len(prefix)], fields[len(prefix):]
        return (tail == need.orders and {f for f, _ in head} == prefix
                and all((m == CONTAINS) == (f in need.arrays) for f, m in head))

    if any(fits(c, leads) for c in composites):
        return True
    if need.arrays or need.inequality or not need.mergeable or not need.equalities or not need.orders:
        return False
    # Index merging: each equality field leads some index that ends with the query's order.
    covered: set[str] = set()
    for c in composites:
        prefix = frozenset(f for f, _ in c[:len(c) - len(need.orders)])
        if prefix and prefix <= need.equalities and fits(c, prefix):
            covered |= prefix
    return covered == need.equalities


def _single_fields(need: Need, group: str, scope: str, indexes: IndexFile) -> bool:
    def has(path: str, *modes: str) -> bool:
        return any(indexes.single_field(group, path, m, scope) for m in modes)

    if not need.orders and not need.arrays:  # equality filters only (or none): merged single-field indexes
        return all(has(f, ASC, DESC) for f in need.equalities)
    if not need.equalities and not need.arrays and len(need.orders) == 1:  # one field, ranged and/or ordered
        (path, direction), = need.orders
        return has(path, direction)
    if not need.equalities and not need.orders and len(need.arrays) == 1:  # one array-contains
        return has(next(iter(need.arrays)), CONTAINS)
    return False


def problem(shape: Shape, indexes: IndexFile, file_name: str = "firestore.indexes.json") -> str | None:
    """None when Firestore can run the query on ``indexes``; else what is missing, naming the query."""
    scope = COLLECTION_GROUP if shape.group else COLLECTION
    if shape.kind == "vector":
        return f"the query {shape.describe()} needs a vector index, which this check does not model: add the rule"
    for conj in conjunctions(shape.filter):
        need = need_of(conj, shape.orders)
        if served(need, shape.collection, scope, indexes):
            continue
        fields = {f for f, _ in conj} | {f for f, _ in shape.orders}
        exempt = sorted(f for f in fields if indexes.exempt(shape.collection, f))
        why = (f"it uses {', '.join(exempt)}, exempt from indexing in {file_name} (fieldOverrides)" if exempt and
               _single_fields(need, shape.collection, scope, IndexFile()) else
               f"it needs a composite index {file_name} does not declare; add: "
               + json.dumps({"collectionGroup": shape.collection, "queryScope": scope, "fields": need.suggestion()}))
        return f"Firestore would refuse the query {shape.describe()}: {why}"
    return None


def problems(shapes: Iterable[Shape], indexes: IndexFile, file_name: str = "firestore.indexes.json") -> list[str]:
    """One message per distinct query shape Firestore would refuse."""
    seen: dict[tuple, str] = {}
    for shape in shapes:
        if shape.key() not in seen:
            seen[shape.key()] = problem(shape, indexes, file_name) or ""
    return [message for message in seen.values() if message]

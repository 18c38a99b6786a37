"""The model of Firestore's index selection (tests/firestore_index_rules.py), one rule at a time."""

from __future__ import annotations

import json

import pytest

from tests.firestore_index_rules import (
    ASC,
    DESC,
    IndexFile,
    IndexFileError,
    Shape,
    conjunctions,
    need_of,
    problem,
)

NONE = IndexFile()  # automatic single-field indexes only


def index(*fields, group="jobs", scope="COLLECTION"):
    return {"collectionGroup": group, "queryScope": scope, "fields": [
        {"fieldPath": f, "arrayConfig": "CONTAINS"} if m == "CONTAINS" else {"fieldPath": f, "order": m}
        for f, m in fields]}


def file(*indexes, overrides=()):
    return IndexFile.parse({"indexes": list(indexes), "fieldOverrides": list(overrides)})


def q(*filters, orders=(), group=False, collection="jobs"):
    tree = None if not filters else filters[0] if len(filters) == 1 else ("and", tuple(filters))
    return Shape(collection, tree, tuple(orders), group, site="somewhere.py:1 (fn)")


def runs(shape, indexes=NONE):
    return problem(shape, indexes) is None


def test_no_filter_and_no_order_needs_nothing():
    assert runs(q())


def test_equality_filters_on_several_fields_merge_single_field_indexes():
    assert runs(q(("status", "=="), ("tenant_id", "=="), ("channel", "==")))
    assert runs(q(("status", "in"), ("tenant_id", "==")))


def test_one_field_ranged_and_ordered_uses_its_single_field_index():
    assert runs(q(orders=[("created_at", DESC)]))
    assert runs(q(("created_at", ">"), orders=[("created_at", DESC)]))
    assert runs(q(("priority", "!=")))  # implicitly ordered by priority
    assert runs(q(("tags", "array-contains")))


def test_equality_with_an_order_on_another_field_needs_a_composite_index():
    shape = q(("tenant_id", "=="), orders=[("created_at", DESC)])
    message = problem(shape, NONE)
    assert "collection jobs where tenant_id == · order by created_at DESC" in message
    assert "[from somewhere.py:1 (fn)]" in message
    assert json.loads(message.split("add: ")[1])["fields"] == [
        {"fieldPath": "tenant_id", "order": ASC}, {"fieldPath": "created_at", "order": DESC}]
    assert runs(shape, file(index(("tenant_id", ASC), ("created_at", DESC))))
    assert not runs(shape, file(index(("tenant_id", ASC), ("created_at", ASC))))  # direction matters
    assert not runs(shape, file(index(("tenant_id", ASC), ("created_at", DESC), group="other")))


def test_in_filter_with_an_order_needs_a_composite_index_like_equality():
    shape = q(("status", "in"), orders=[("created_at", DESC)])
    assert not runs(shape)
    assert runs(shape, file(index(("status", DESC), ("created_at", DESC))))  # equality fields: either order


def test_equality_fields_merge_composites_that_end_with_the_order():
    shape = q(("tenant_id", "=="), ("status", "=="), orders=[("created_at", DESC)])
    both = file(index(("tenant_id", ASC), ("created_at", DESC)), index(("status", ASC), ("created_at", DESC)))
    assert runs(shape, both)
    assert not runs(shape, file(index(("tenant_id", ASC), ("created_at", DESC))))
    assert runs(shape, file(index(("status", ASC), ("tenant_id", ASC), ("created_at", DESC))))
    with_in = q(("tenant_id", "=="), ("status", "in"), orders=[("created_at", DESC)])
    assert not runs(with_in, both)  # merging is documented for == only
    assert runs(with_in, file(index(("tenant_id", ASC), ("status", ASC), ("created_at", DESC))))


def test_several_orders_need_a_composite_index_in_that_order():
    shape = q(("status", "=="), orders=[("priority", DESC), ("created_at", ASC)])
    assert not runs(shape)
    assert runs(shape, file(index(("status", ASC), ("priority", DESC), ("created_at", ASC))))
    assert not runs(shape, file(index(("status", ASC), ("created_at", ASC), ("priority", DESC))))
    assert not runs(shape, file(index(("status", ASC), ("priority", ASC), ("created_at", ASC))))
    assert not runs(q(orders=[("priority", DESC), ("created_at", ASC)]))


def test_equality_with_a_range_on_another_field_needs_a_composite_index():
    shape = q(("status", "=="), ("tenant_id", ">"), orders=[("tenant_id", ASC), ("priority", DESC)])
    assert not runs(shape)
    assert runs(shape, file(index(("status", ASC), ("tenant_id", ASC), ("priority", DESC))))
    implicit = q(("status", "=="), ("created_at", "<"))  # ordered by the range field implicitly
    assert runs(implicit, file(index(("status", ASC), ("created_at", ASC))))


def test_ranges_on_two_fields_are_ordered_by_name_after_the_explicit_order():
    assert need_of([("b", ">"), ("a", "<")], []).orders == (("a", ASC), ("b", ASC))
    assert need_of([("b", ">"), ("a", "<")], [("c", DESC)]).orders == (("c", DESC), ("a", DESC), ("b", DESC))
    assert not runs(q(("b", ">"), ("a", "<")))
    assert runs(q(("b", ">"), ("a", "<")), file(index(("a", ASC), ("b", ASC))))


def test_array_contains_with_anything_else_needs_a_composite_index():
    shape = q(("tags", "array-contains"), orders=[("created_at", DESC)])
    assert not runs(shape)
    assert runs(shape, file(index(("tags", "CONTAINS"), ("created_at", DESC))))
    assert not runs(shape, file(index(("tags", ASC), ("created_at", DESC))))
    assert not runs(q(("tags", "array-contains"), ("status", "==")))


def test_orders_on_fields_pinned_by_equality_and_a_trailing_name_are_dropped():
    assert need_of([("status", "==")], [("status", ASC)]).orders == ()
    assert need_of([], [("created_at", DESC), ("__name__", DESC)]).orders == (("created_at", DESC),)
    assert need_of([], [("created_at", DESC), ("__name__", ASC)]).orders == (("created_at", DESC), ("__name__", ASC))


def test_an_exempt_field_cannot_be_filtered_or_ordered_without_a_composite():
    exempt = file(overrides=[{"collectionGroup": "jobs", "fieldPath": "job", "indexes": []}])
    message = problem(q(("job.status", "==")), exempt)  # a map's exemption covers its subfields
    assert "job.status" in message and "exempt" in message
    assert not runs(q(orders=[("job", ASC)]), exempt)
    assert runs(q(("status", "==")), exempt)
    only_asc = file(overrides=[{"collectionGroup": "jobs", "fieldPath": "created_at",
                                "indexes": [{"order": ASC, "queryScope": "COLLECTION"}]}])
    assert runs(q(orders=[("created_at", ASC)]), only_asc)
    assert not runs(q(orders=[("created_at", DESC)]), only_asc)


def test_or_queries_need_every_disjunct_served():
    shape = Shape("jobs", ("or", (("status", "=="), ("and", (("tenant_id", "=="), ("priority", ">"))))))
    assert conjunctions(shape.filter) == [[("status", "==")], [("tenant_id", "=="), ("priority", ">")]]
    assert not runs(shape)
    assert runs(shape, file(index(("tenant_id", ASC), ("priority", ASC))))


def test_collection_group_queries_need_collection_group_indexes():
    assert not runs(q(("status", "=="), group=True))
    grouped = file(overrides=[{"collectionGroup": "jobs", "fieldPath": "status",
                               "indexes": [{"order": ASC, "queryScope": "COLLECTION_GROUP"}]}])
    assert runs(q(("status", "=="), group=True), grouped)
    shape = q(("status", "=="), orders=[("created_at", DESC)], group=True)
    assert not runs(shape, file(index(("status", ASC), ("created_at", DESC))))
    assert runs(shape, file(index(("status", ASC), ("created_at", DESC), scope="COLLECTION_GROUP")))


def test_a_query_kind_the_model_does_not_know_is_refused_not_passed():
    assert "vector index" in problem(Shape("jobs", kind="vector", site="x.py:1 (f)"), NONE)


def test_shapes_round_trip_through_json():
    shape = Shape("jobs", ("or", (("a", "=="), ("and", (("b", "in"), ("c", ">"))))), (("c", DESC),), True,
                  "aggregation", "x.py:3 (f)")
    assert Shape.from_json(json.loads(json.dumps(shape.to_json()))) == shape


@pytest.mark.parametrize("data, named", [
    ({"fieldOverrides": []}, "missing ['indexes']"),
    ({"indexes": [index(("a", "DESC"), ("b", ASC))]}, "order: 'DESC'; allowed: ASCENDING, DESCENDING"),
    ({"indexes": [index(("a", ASC))]}, "needs two fields"),
    ({"indexes": [{**index(("a", ASC), ("b", ASC)), "colection": 1}]}, "unknown ['colection']"),
    ({"indexes": [index(("a", ASC), ("b", ASC), scope="DATABASE")]}, "queryScope: 'DATABASE'"),
    ({"indexes": [index(("a", ASC), ("b", ASC))] * 2}, "declared twice"),
    ({"indexes": [], "fieldOverrides": [{"collectionGroup": "jobs", "fieldPath": "job",
                                         "indexes": [{"arrayConfig": "ANY"}]}]}, "arrayConfig: 'ANY'"),
])
def test_a_malformed_index_file_is_refused_naming_the_entry(data, named):
    with pytest.raises(IndexFileError, match="firestore.indexes.json") as refused:
        IndexFile.parse(data)
    assert named in str(refused.value)

"""``settle_heap`` (orchestrator/serve.py): start-up garbage is collected, what lives is frozen."""

from __future__ import annotations

import gc
import weakref

from orchestrator.serve import settle_heap


class Node:
    """An object in a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


def test_settle_heap_collects_cyclic_garbage_first_then_freezes_the_survivors():
    garbage = Node()
    gone = weakref.ref(garbage)
    del garbage  # unreachable, but alive until a collection: freezing it now would keep it for good
    kept = Node()
    gc.unfreeze()
    try:
        frozen = settle_heap()
        assert gone() is None
        assert frozen == gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # set aside: no collection walks it
    finally:
        gc.unfreeze()
    assert any(obj is kept for obj in gc.get_objects())

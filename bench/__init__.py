"""Benchmarks of LaxAI Train: ``python -m bench`` (``make bench``).

Each item is a module with ``run(ctx) -> Result``; ``bench.items`` lists them in
order, ``bench.__main__`` runs them, prints a table and writes BENCHMARKS.md
(``bench.report``). Items measure the real system: ``laxai serve`` as a
subprocess (``bench.service``), real worker subprocesses training Ultralytics
YOLO, Google's Firestore and Pub/Sub emulators for the gcp backend, and the
fake Slack Web API from ``tests/fakes`` for the Slack items. Benchmarks are
measurements, not tests: nothing here asserts on a time.
"""

"""Loaded at start by every Python process the tests run (this directory is on PYTHONPATH):
records Firestore query shapes when LAXAI_FIRESTORE_QUERY_LOG names a file (see firestore_query_log)."""

import os

if os.environ.get("LAXAI_FIRESTORE_QUERY_LOG"):
    try:
        import firestore_query_log

        firestore_query_log.install()
    except Exception:  # noqa: BLE001 - a recorder problem must never stop a process the tests start
        pass

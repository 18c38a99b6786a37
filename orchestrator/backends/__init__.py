"""The two backends behind one contract, and their assembly from Settings.

``assembly`` picks and opens the configured one (``open_backend``); ``local`` opens the
SQLite file, local queue and directories of the local backend; ``gcp`` the Firestore,
Pub/Sub and Cloud Storage parts; ``sqlite_db`` is the SQLite helper the local parts share.
"""

from orchestrator.backends.assembly import Backend, gpu_types_available, launcher_kind, make_launcher, open_backend

__all__ = ["Backend", "gpu_types_available", "launcher_kind", "make_launcher", "open_backend"]

"""Room 2, the store: where every item, probe, run, transcript and grade is kept. The DuckDB file
with its locks (database.py), the shared store on DuckLake (lake.py), copying between stores
(transfer.py) and every SQL statement of Sycoscope (sql.py).

May import: lib.probes (a probe's messages are part of a transcript's cache key).
"""

from lib.store.database import Store, StoreBusy, StoreError, default_location, is_lake, transcript_key

__all__ = ["Store", "StoreBusy", "StoreError", "default_location", "is_lake", "transcript_key"]

"""`python -m lib copy`: every table of one store into another, a file store into a DuckLake store
or back. A row whose key the target holds already is left out, so a copy can be repeated (or
resumed after a failure) without storing anything twice."""

from __future__ import annotations

from lib.store import sql
from lib.store.database import Operations

CHUNK_ROWS = 50_000  # rows read, and written in one transaction, at a time: memory stays bounded


def copy_store(
    source: Operations, target: Operations, chunk_rows: int = CHUNK_ROWS
) -> dict[str, tuple[int, int]]:
    """Copy `source` into `target`, table by table in key order, `chunk_rows` rows per transaction.
    Returns, per table, the rows read and the rows new to the target."""
    copied = {}
    for table in sql.TABLE_KEYS:
        read = new = 0
        with source.reading() as con:
            chunks = con.execute(sql.READ_TABLE[table]).to_arrow_reader(chunk_rows)
            for chunk in chunks:
                with target.writing() as into:
                    into.register("incoming", chunk)
                    new += into.execute(sql.COPY_INTO[table]).fetchone()[0]
                read += chunk.num_rows
        copied[table] = (read, new)
    return copied

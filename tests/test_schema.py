"""A store written by an older Sycoscope opens, migrated, with what it held."""

from __future__ import annotations

from lib.store import Store
from tests import fixtures


def test_a_schema_3_store_is_migrated_with_its_transcripts(tmp_path):
    """Schema 3 had no `imported` or `superseded` column. DuckDB refuses to add a NOT NULL column to
    a table a view depends on, which once made every schema-3 store unopenable."""
    path = tmp_path / "old.duckdb"
    fixtures.build(path)
    held = Store(path).scalar("SELECT count(*) FROM transcripts")
    assert held > 0
    with Store(path).writing() as con:  # the schema-3 store: the two columns gone, version 3
        con.execute("DROP VIEW answers")
        con.execute("DROP INDEX transcripts_probe")  # DuckDB drops no column of an indexed table
        con.execute("ALTER TABLE transcripts DROP COLUMN imported")
        con.execute("ALTER TABLE transcripts DROP COLUMN superseded")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', '3')")
        con.execute(
            "CREATE VIEW answers AS SELECT * FROM transcripts"
        )  # a view over the table, as schema 3 had

    store = Store(path)
    assert store.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == "4"
    assert store.query(
        "SELECT count(*), count(*) FILTER (NOT imported AND NOT superseded) FROM transcripts"
    ) == [(held, held)]
    assert store.scalar("SELECT count(*) FROM answers") > 0

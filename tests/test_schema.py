"""A store written by an older Sycoscope opens, migrated, with what it held."""

from __future__ import annotations

import duckdb

from lib.store import Store, sql
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
    assert store.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(sql.SCHEMA_VERSION)
    assert store.query(
        "SELECT count(*), count(*) FILTER (NOT imported AND NOT superseded) FROM transcripts"
    ) == [(held, held)]
    assert store.scalar("SELECT count(*) FROM answers") > 0


def test_a_schema_4_store_gains_the_batch_tables_and_loses_the_key_on_runs(tmp_path):
    """Schema 5 adds the tables of batch runs (lib.run.batch_runs) and drops the key on runs (see
    sql.RUNS_TABLE); a schema-4 store keeps what it held."""
    path = tmp_path / "old.duckdb"
    fixtures.build(path)
    held = Store(path).scalar("SELECT count(*) FROM transcripts")
    with Store(path).writing() as con:  # the schema-4 store: no batch tables, version 4
        con.execute("DROP TABLE batches")
        con.execute("DROP TABLE batch_requests")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', '4')")
        con.execute("ALTER TABLE runs RENAME TO keyless")  # schema 4's runs, with its key
        con.execute(sql.RUNS_TABLE.replace("run_id VARCHAR NOT NULL", "run_id VARCHAR PRIMARY KEY"))
        con.execute("INSERT INTO runs SELECT * FROM keyless")
        con.execute("DROP TABLE keyless")
    keys = """SELECT count(*) FROM duckdb_constraints()
        WHERE table_name = 'runs' AND constraint_type = 'PRIMARY KEY'"""
    with duckdb.connect(str(path), read_only=True) as con:  # as it is: a Store would migrate it
        runs = con.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
        assert runs and con.execute(keys).fetchone() == (1,)
    store = Store(path)
    assert store.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(sql.SCHEMA_VERSION)
    assert store.scalar("SELECT count(*) FROM transcripts") == held
    assert store.query("SELECT count(*) FROM batches") == [(0,)]
    assert store.query("SELECT count(*) FROM batch_requests") == [(0,)]
    assert store.query("SELECT * FROM runs ORDER BY run_id") == runs
    assert store.scalar(keys) == 0

"""Room 4, measurement: graders and the LLM judge (a grade is a verdict on a transcript), the
metrics (defined once, in SQL: lib/store/sql.py), the cache of metric tables, and the paper's
reported numbers they are set beside.

May import: lib.probes, lib.store, lib.run (a judge is a provider).
"""

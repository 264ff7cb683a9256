"""Room 5, what the pages show: the reads behind each page (browse.py), the Overview's cards,
Plotly charts, word diffs, and the first-run seed that fills a fresh store.

May import: every other room. Only the command line (lib/cli.py) and pages/ read through it.
"""

"""Sycoscope: an explorer for sycophancy in language models. All logic lives here, without Streamlit,
in five rooms that follow a probe's way: probes (built) -> store (kept) -> run (sent) -> measure
(graded and counted) -> view (what the pages show). A room imports only from rooms before it
(tests/test_layout.py); lib.paths and the command line (cli.py) stand outside the rooms."""

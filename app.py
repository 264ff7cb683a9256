"""Sycoscope: the dashboard. `streamlit run app.py` opens it; every page lives in pages/."""

import streamlit as st

from pages import common

st.set_page_config(page_title="Sycoscope", page_icon=":material/psychology_alt:", layout="wide")

presenting = common.presenting()
page = st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon=":material/insights:", default=True),
        st.Page("pages/transcripts.py", title="Transcripts", icon=":material/forum:"),
        st.Page("pages/compare.py", title="Compare models", icon=":material/compare:"),
        st.Page("pages/run.py", title="Run probes", icon=":material/play_circle:"),
        st.Page("pages/playground.py", title="Playground", icon=":material/science:"),
        st.Page("pages/data.py", title="Data", icon=":material/database:"),
    ],
    position="top" if presenting else "sidebar",
)
common.presentation(presenting)
page.run()

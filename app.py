"""Sycoscope: the dashboard. `streamlit run app.py` opens it; every page lives in pages/."""

import streamlit as st

from pages import common

st.set_page_config(page_title="Sycoscope", page_icon=":material/psychology_alt:", layout="wide")
st.session_state["_via_app"] = True
presenting = common.presenting()
page = common.pages(presenting)
common.presentation(presenting)
page.run()

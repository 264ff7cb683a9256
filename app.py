"""Sycoscope: the dashboard. `streamlit run app.py` opens it; every page lives in pages/."""

import streamlit as st

from pages.parts import frame, url

st.set_page_config(page_title="Sycoscope", page_icon=":material/psychology_alt:", layout="wide")
st.session_state["_via_app"] = True
presenting = url.presenting()
page = frame.pages(presenting)
frame.presentation(presenting)
frame.access_panel()
page.run()

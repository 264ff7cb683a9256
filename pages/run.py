import streamlit as st

st.title("run")

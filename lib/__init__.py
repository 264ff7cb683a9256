"""Sycoscope: an explorer for sycophancy in language models. All logic lives here, without Streamlit."""

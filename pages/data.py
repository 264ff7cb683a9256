"""Data: the sets in the store, ingesting a set, exporting answers, and the store's health."""

import time
from pathlib import Path

import streamlit as st

from lib.paths import EXPORTS
from lib.probes import probesets
from lib.probes.probesets import ProbeSetError
from lib.store import StoreError
from lib.view import browse
from pages.parts import frame, reads, show, url

MIME = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv", "jsonl": "application/x-ndjson"}

st.title("Data")
store = reads.store()
graders = reads.graders()
sets = reads.cached(browse.sets)

st.subheader("Sets in the store")
if sets.empty:
    st.info("No sets yet: ingest one below, or open the Overview to fill the store from the built-in sets.")
else:
    st.dataframe(sets, hide_index=True, width="stretch")

st.subheader("Ingest a set")
chosen = url.url_select(
    "Set",
    list(probesets.SETS),
    "ingest",
    format_func=lambda s: f"{probesets.SETS[s].title} ({s}, {probesets.SETS[s].source})",
)
probe_set = probesets.get(chosen)
st.caption(probe_set.description)
# A visitor of a served dashboard names no folder of the server and starts no download.
may_ingest = frame.operator("Ingesting")
folder = ""
if probe_set.files:
    names = ", ".join(f.filename for f in probe_set.files)
    source = st.radio(
        "From", ["download", "a local folder"], horizontal=True, key="ingest_from", disabled=not may_ingest
    )
    if source == "a local folder" and may_ingest:
        folder = st.text_input(f"Folder holding {names}", key="ingest_folder")
    else:
        st.caption("Downloads " + ", ".join(f.url for f in probe_set.files) + " and checks known hashes.")
# Checked on the click too: see frame.operator.
if st.button("Ingest", key="ingest", type="primary", disabled=not may_ingest) and may_ingest:
    with st.status(f"Ingesting {chosen}", expanded=True) as status:
        bar = st.progress(0.0)

        def progress(label: str, done: int, total: int | None) -> None:
            bar.progress(min(1.0, done / total) if total else 0.0, text=label)

        try:
            rows = probe_set.load(from_dir=Path(folder) if folder else None, progress=progress)
            new_items, new_probes = store.ingest(probe_set, rows)
        except (ProbeSetError, StoreError, OSError) as e:
            # kept open: the reason is inside
            status.update(label=f"Could not ingest {chosen}", state="error", expanded=True)
            show.problem(str(e))
        else:
            status.update(label=f"Ingested {chosen}", state="complete")
            st.success(f"Read {len(rows):,} items; added {new_items:,} items and {new_probes:,} probes.")

st.subheader("Export answers with their grades")
columns = st.columns(3)
fmt = columns[0].selectbox("Format", browse.EXPORT_FORMATS, key="export_format")
export_set = columns[1].selectbox(
    "Set", sets["set_id"].tolist(), index=None, placeholder="All sets", key="export_set"
)
export_model = columns[2].selectbox(
    "Model",
    reads.cached(browse.models, export_set),
    index=None,
    placeholder="All models",
    key="export_model",
)
may_export = frame.operator("Writing an export")
if st.button("Write the file", key="export", disabled=not may_export) and may_export:
    parts = [p.replace("/", "-").replace(":", "-") for p in (export_set, export_model) if p]
    path = EXPORTS / f"sycoscope-{'-'.join(parts) or 'all'}-{time.strftime('%Y%m%d-%H%M%S')}.{fmt}"
    with st.spinner("Writing…"):
        written = browse.export(store, path, fmt, graders, export_set, export_model)
    st.session_state["export_path"] = str(path)
    st.success(f"Wrote {written:,} answers to {show.md(str(path))}")
if st.session_state.get("export_path"):
    path = Path(st.session_state["export_path"])
    if path.is_file() and path.stat().st_size < 200e6:
        # A callable: the file is read when the button is clicked, not on every rerun.
        st.download_button(
            f"Download {path.name}",
            data=path.read_bytes,
            file_name=path.name,
            mime=MIME[path.suffix.lstrip(".")],
            key="download",
        )
    elif path.is_file():
        st.caption("Files over 200 MB stay on disk: take it from the path above.")

st.subheader("Store health")
health = reads.cached(browse.health, graders)
if frame.may_operate():  # where the store lies on the server is the operator's to know
    st.code(health["path"], language=None)
numbers = st.columns(4)
numbers[0].metric("Transcripts", f"{health['transcripts']:,}")
numbers[1].metric("Grades", f"{health['grades']:,}")
numbers[2].metric("Errors", f"{health['errors']:,}")
numbers[3].metric("Size", "DuckLake" if health["size_mb"] is None else f"{health['size_mb']:,} MB")
checks = st.columns(4)
checks[0].metric("Answers without a current grade", f"{health['ungraded']:,}")
checks[1].metric(
    "Grades of older grader versions", f"{health['stale_grades']:,}", help="Kept, but not shown or counted"
)
checks[2].metric("Transcripts without their probe", f"{health['orphans']:,}")
checks[3].metric("Runs marked running", f"{health['running']:,}")
errors = reads.cached(browse.recent_errors)
if not errors.empty:
    st.markdown("**Recent errors**")
    st.dataframe(errors, hide_index=True, width="stretch")

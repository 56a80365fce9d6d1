"""The library page: what is indexed, uploading new files (following the job), deleting documents."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from ui.client import ApiClient, ApiError, UploadFile
from ui.formatting import job_progress, markdown_text, parse_tags, plural

POLL_SECONDS = 0.5


def render(client: ApiClient) -> None:
    """Draw the page."""
    st.title("Library")
    if "flash" in st.session_state:  # a message from before the last rerun (e.g. a finished delete)
        st.success(markdown_text(st.session_state.pop("flash")))
    try:
        documents = client.documents()
    except ApiError as exc:
        st.error(markdown_text(exc))
        return
    _overview(documents)
    _upload(client)
    _delete(client, documents)


def _overview(documents: list[dict[str, Any]]) -> None:
    units = sum(d["units"] for d in documents)
    kinds = sorted({d["modality"] for d in documents})
    left, middle, right = st.columns(3)
    left.metric("Documents", len(documents))
    middle.metric("Indexed units", units)
    right.metric("Kinds", ", ".join(kinds) or "none")
    if not documents:
        st.info("Nothing is indexed yet: upload files below, or run `mmsearch ingest PATH`.")
        return
    rows = [
        {
            "title": d["title"],
            "kind": d["modality"],
            "units": d["units"],
            "tags": ", ".join(d["tags"]),
            "state": "complete" if d["complete"] else "indexing",
            "source": d["source"],
        }
        for d in documents
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


def _upload(client: ApiClient) -> None:
    st.subheader("Add documents")
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader("Files (PDF, images, videos, text)", accept_multiple_files=True, key="files")
        tags = st.text_input("Tags for these files (comma-separated)", key="upload_tags")
        submitted = st.form_submit_button("Upload and index")
    if not submitted:
        return
    try:
        job = client.upload([UploadFile(f.name, f.getvalue()) for f in files or []], parse_tags(tags))
        _follow(client, job["job_id"])
    except ApiError as exc:
        st.error(markdown_text(exc))


def _follow(client: ApiClient, job_id: str) -> None:
    """Poll the job until it ends, moving a progress bar; then show each file's result."""
    bar = st.progress(0.0, text="Uploaded; waiting for the indexer")
    while True:
        job = client.job(job_id)
        fraction, status = job_progress(job)
        bar.progress(fraction, text=status)
        if job["state"] in ("done", "failed"):
            break
        time.sleep(POLL_SECONDS)
    results = [
        {"file": f["file_name"], "result": f["status"], "units": f["units"], "error": f.get("error") or ""}
        for f in job["files"]
    ]
    st.dataframe(results, hide_index=True, width="stretch")
    if job["state"] == "failed" or any(f["status"] == "failed" for f in job["files"]):
        st.warning(markdown_text(status))
    else:
        st.success(markdown_text(status))


def _delete(client: ApiClient, documents: list[dict[str, Any]]) -> None:
    st.subheader("Remove a document")
    if not documents:
        return
    by_label = {f"{d['title']} ({plural(d['units'], 'unit')}) · {d['doc_id'][:8]}": d for d in documents}
    label = st.selectbox("Document", list(by_label), key="delete_choice")
    if st.button("Delete…", key="delete"):
        st.session_state["confirm_delete"] = by_label[label]["doc_id"]
    pending = st.session_state.get("confirm_delete")
    if pending is None:
        return
    doc = next((d for d in documents if d["doc_id"] == pending), None)
    if doc is None:
        st.session_state.pop("confirm_delete")
        return
    st.warning(
        f"Delete **{markdown_text(doc['title'])}** and its {plural(doc['units'], 'unit')} from the index? "
        "This cannot be undone."
    )
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", key="delete_yes", type="primary"):
        st.session_state.pop("confirm_delete")
        try:
            result = client.delete(pending)
        except ApiError as exc:
            st.error(markdown_text(exc))
            return
        st.session_state["flash"] = f"Deleted {doc['title']} ({plural(result['deleted_units'], 'unit')})."
        st.rerun()
    if no.button("Cancel", key="delete_no"):
        st.session_state.pop("confirm_delete")
        st.rerun()

"""The mmsearch search UI (Streamlit): ``mmsearch ui``, or ``streamlit run ui/app.py``.

A client of the REST API only: it reads the API's address and key from the settings
(``MMSEARCH_UI_API_URL``, ``MMSEARCH_API_KEY``) and never touches the index itself.
"""

from __future__ import annotations

import streamlit as st

from core.settings import Settings
from ui import library_page, search_page
from ui.client import ApiClient, ApiError
from ui.formatting import markdown_text, plural

PAGES = {"Search": search_page.render, "Library": library_page.render}


@st.cache_resource
def _client(base_url: str, api_key: str | None, timeout_s: float) -> ApiClient:
    return ApiClient(base_url, api_key, timeout_s)


def main() -> None:
    """Draw the chosen page."""
    st.set_page_config(page_title="mmsearch", page_icon="🔎", layout="wide")
    settings = Settings()
    key = settings.api_key.get_secret_value() if settings.api_key else None
    client = _client(settings.api_base_url(), key, settings.ui_timeout_s)
    with st.sidebar:
        st.header("mmsearch")
        page = st.radio("Page", list(PAGES), key="page")
        st.caption(f"API: {client.base_url}")
        try:
            status = client.ready()
            st.caption(f"Ready · {plural(status.get('units', 0), 'unit')} indexed")
        except ApiError as exc:
            st.error(markdown_text(exc))
    PAGES[page](client)


main()

"""The Streamlit search UI (``ui/app.py``), a client of the REST API (``ui/client.py``)."""

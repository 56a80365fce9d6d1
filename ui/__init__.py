"""The Streamlit search UI, a client of the REST API.

Not built yet: see the issue "Streamlit search UI".
"""

"""The HTTP service: ``main.create_app()`` builds the FastAPI app that ``mmsearch serve`` runs."""

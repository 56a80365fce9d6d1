"""Entry points: the ``mmsearch`` command line (and, with the server extra, the REST API)."""

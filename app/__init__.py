"""Entry points: ``cli/`` (the ``mmsearch`` command line) and ``api/`` (the REST API it serves)."""

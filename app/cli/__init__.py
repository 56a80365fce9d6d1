"""The ``mmsearch`` command line: ``main.py`` holds the Typer app, one module per command group."""

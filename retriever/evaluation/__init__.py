"""Retrieval quality on a user's own corpus or a public benchmark: datasets, metrics, sweeps, reports.

``mmsearch eval`` (``app/cli/eval_command.py``) is the front door; :func:`run_sweep` does the work.
"""

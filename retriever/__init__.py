"""The two-stage search pipeline: embed the query, search Qdrant, hydrate candidates, rerank.

Not built yet: see the issue "Retriever and REST API".
"""

"""Loaders, chunking, embedders, the Qdrant store, the media store and bulk ingestion.

Not built yet: see the issue "Indexer: load every kind of document, embed it into Qdrant".
"""

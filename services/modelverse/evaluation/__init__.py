"""Retrieval-quality evaluation: the paper's metrics and its metadata-only baseline."""

"""A recall shard: the FAISS first stage and the second-order rerank over one partition."""

"""The serving cluster: recall shards (FAISS + rerank), a stateless gateway, an admin service.

See docs/SERVING.md for the design, the status codes and the measured numbers.
"""

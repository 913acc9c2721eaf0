"""The stateless gateway: validates and encodes queries, fans out to the shards, merges."""

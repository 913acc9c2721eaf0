"""Who may call what: API keys with roles, the gRPC interceptor that checks them, TLS."""

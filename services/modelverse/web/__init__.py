"""The web page of Modelverse search: a separate process that talks to the gateway through the
public gRPC API only (docs/WEB.md)."""

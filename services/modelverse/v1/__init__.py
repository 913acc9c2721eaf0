"""Generated gRPC code of protos/modelverse/v1 (tools/gen_protos.py); do not edit."""

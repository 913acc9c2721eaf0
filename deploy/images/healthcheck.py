#!/opt/venv/bin/python
"""Container health check of every Modelverse image (HEALTHCHECK and the compose file).

The mode comes from the environment, so one script serves each process the images run:
- gRPC (default): the standard health service on 127.0.0.1:$MODELVERSE_HEALTH_PORT (50051);
  with $MODELVERSE_HEALTH_TLS_CA the channel is TLS, checked against that CA.
- HTTP ($MODELVERSE_HEALTH_HTTP=1): GET $MODELVERSE_HEALTH_PATH (/) answers below 500.
- broker ($MODELVERSE_HEALTH_BROKER=1, the worker): its Redis broker answers PING.
Exit status 0 = healthy, 1 = not.
"""

from __future__ import annotations

import os
import sys


def grpc_healthy(port: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = f"127.0.0.1:{port}"
    ca_path = os.environ.get("MODELVERSE_HEALTH_TLS_CA")
    if ca_path:
        with open(ca_path, "rb") as ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
        # the certificate names the service, not the loopback address
        options = [("grpc.ssl_target_name_override", os.environ.get("MODELVERSE_HEALTH_TLS_NAME", "localhost"))]
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_healthy(port: str) -> bool:
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{port}{os.environ.get('MODELVERSE_HEALTH_PATH', '/')}"
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:  # noqa: S310 (a fixed loopback URL)
            return reply.status < 500
    except urllib.error.HTTPError as error:
        return error.code < 500


def broker_healthy() -> bool:
    import redis

    url = os.environ.get("MODELVERSE_BROKER", "redis://127.0.0.1:6379/0")
    return bool(redis.Redis.from_url(url, socket_timeout=3).ping())


def main() -> int:
    port = os.environ.get("MODELVERSE_HEALTH_PORT", "50051")
    try:
        if os.environ.get("MODELVERSE_HEALTH_BROKER") == "1":
            healthy = broker_healthy()
        elif os.environ.get("MODELVERSE_HEALTH_HTTP") == "1":
            healthy = http_healthy(port)
        else:
            healthy = grpc_healthy(port)
    except Exception as error:  # any failure to ask is "not healthy", said briefly
        print(f"unhealthy: {type(error).__name__}: {str(error)[:200]}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

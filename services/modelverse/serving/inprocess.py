"""A whole serving cluster inside one process: real gRPC servers on loopback.

Tests and benchmarks use it to talk to real shard and gateway servers without starting
processes; `modelverse cluster up` (serving.loopback_cluster) runs the same servicers as processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from modelverse.serving.admission import AdmissionControl, AdmissionLimits
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.gateway.query import Limits
from modelverse.serving.gateway.service import GatewayServicer
from modelverse.serving.grpc_server import DEFAULT_MAX_MESSAGE_BYTES, build_server
from modelverse.serving.shard.service import ShardServicer
from modelverse.serving.request_context import RequestIdInterceptor
from modelverse.serving.shard.state import ShardState
from modelverse.serving.tracing import OFF, Tracing
from modelverse.settings.shard import ShardSettings
from modelverse.v1 import search_pb2, search_pb2_grpc, shard_pb2, shard_pb2_grpc


@dataclass
class InProcessCluster:
    gateway: search_pb2_grpc.SearchServiceStub
    servers: list[grpc.Server]
    states: list[ShardState]
    channel: grpc.Channel
    pool: ShardPool

    def close(self) -> None:
        self.channel.close()
        self.pool.close()
        for server in self.servers:
            server.stop(grace=None)


def serve_states(
    states: Sequence[ShardState],
    *,
    limits: Limits = Limits(),
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    encoder: Any = None,
    generators: Any = None,
    tracing: Tracing = OFF,
    admission: AdmissionLimits | None = None,
) -> InProcessCluster:
    """One shard server per state (each its own shard) and a gateway in front of them, with the
    processes' interceptors: request ids, tracing (when given one), admission control of the
    gateway (when given limits)."""
    servers, addresses = [], []
    shard_name = shard_pb2.DESCRIPTOR.services_by_name["ShardService"].full_name
    for state in states:
        server, port, _ = build_server(
            [lambda srv, st=state: shard_pb2_grpc.add_ShardServiceServicer_to_server(ShardServicer(st), srv)],
            [shard_name], interceptors=[RequestIdInterceptor("shard"), *tracing.server_interceptors()],
        )
        servers.append(server)
        addresses.append([f"127.0.0.1:{port}"])
    pool = ShardPool(addresses, tracing=tracing)
    servicer = GatewayServicer(pool, limits=limits, encoder=encoder, generators=generators)
    interceptors: list[grpc.ServerInterceptor] = [RequestIdInterceptor("gateway"), *tracing.server_interceptors()]
    threads: dict[str, Any] = {}
    if admission is not None:
        interceptors.append(AdmissionControl(admission, "gateway"))
        threads = {"max_workers": admission.threads(), "maximum_concurrent_rpcs": admission.maximum_concurrent_rpcs()}
    server, port, _ = build_server(
        [lambda srv: search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, srv)],
        [search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name],
        max_message_bytes=max_message_bytes, interceptors=interceptors, **threads,
    )
    servers.append(server)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return InProcessCluster(search_pb2_grpc.SearchServiceStub(channel), servers, list(states), channel, pool)


def start_in_process(
    store_root: Path,
    index_root: Path,
    shards: int = 2,
    *,
    lifted: tuple[str, ...] | None = None,
    shard: Mapping[str, Any] | None = None,
    **serve_options: Any,
) -> InProcessCluster:
    """``shards`` shards of the store at ``store_root`` (indexes under ``index_root``), and a gateway.

    ``shard``: settings of every shard by field name (settings.shard.ShardSettings, as a
    ClusterSpec's); ``lifted``: the methods with a lifted first stage (None: the default)."""
    options = dict(shard or {})
    if lifted is not None:
        options["lifted"] = ",".join(lifted)
    states = [
        ShardState(ShardSettings.model_validate({
            **options, "store": store_root, "shard": s, "shards": shards, "index_dir": index_root / f"shard-{s}",
        }).shard_config())
        for s in range(shards)
    ]
    return serve_states(states, **serve_options)

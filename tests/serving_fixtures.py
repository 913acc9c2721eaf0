"""A small store and an in-process serving cluster (real gRPC servers on loopback)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from conftest import SmallCollection, build_small_collection
from modelverse.serving.gateway.fanout import ShardPool
from modelverse.serving.gateway.query import Limits
from modelverse.serving.gateway.service import GatewayServicer
from modelverse.serving.grpc_server import build_server
from modelverse.serving.shard.service import ShardServicer
from modelverse.serving.shard.state import ShardConfig, ShardState
from modelverse.store.directory import DirectoryStore, StoreConfig
from modelverse.store.metadata import ModelMetadata
from modelverse.v1 import search_pb2, search_pb2_grpc, shard_pb2, shard_pb2_grpc

FAMILIES = ("gan", "diffusion", "vae")


def metadata_for(index: int, model_id: str, tags: tuple[str, ...]) -> ModelMetadata:
    return ModelMetadata(
        model_id, name=f"Model {index}", tags=tags, family=FAMILIES[index % 3], resolution=(64, 128, 256)[index % 3]
    )


def build_store(root: Path, count: int = 40, seed: int = 0) -> tuple[DirectoryStore, SmallCollection]:
    small = build_small_collection(count=count, samples=200, dim=64, rank=8, seed=seed)
    store = DirectoryStore.create(root, StoreConfig(dim=64, rank=8))
    store.put_many([(metadata_for(i, m, t), s) for i, (m, t, s) in enumerate(zip(small.ids, small.tags, small.stats))])
    return store, small


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


def start_in_process(store_root: Path, index_root: Path, shards: int = 2, limits: Limits = Limits(),
                     max_message_bytes: int = 1024 * 1024, encoder=None, generators=None) -> InProcessCluster:
    servers, states, addresses = [], [], []
    shard_name = shard_pb2.DESCRIPTOR.services_by_name["ShardService"].full_name
    for s in range(shards):
        state = ShardState(ShardConfig(store=store_root, shard=s, shards=shards, index_dir=index_root / f"shard-{s}"))
        server, port, _ = build_server(
            [lambda srv, st=state: shard_pb2_grpc.add_ShardServiceServicer_to_server(ShardServicer(st), srv)],
            [shard_name],
        )
        servers.append(server)
        states.append(state)
        addresses.append([f"127.0.0.1:{port}"])
    pool = ShardPool(addresses)
    servicer = GatewayServicer(pool, limits=limits, encoder=encoder, generators=generators)
    server, port, _ = build_server(
        [lambda srv: search_pb2_grpc.add_SearchServiceServicer_to_server(servicer, srv)],
        [search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name],
        max_message_bytes=max_message_bytes,
    )
    servers.append(server)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return InProcessCluster(search_pb2_grpc.SearchServiceStub(channel), servers, states, channel, pool)
